"""The Open Inference Protocol's tensors: reading an infer request into a matrix and writing
predictions as output tensors. Nothing here knows about HTTP."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from .errors import InvalidInput
from .inputs import Features
from .prediction import Explanation, Prediction

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
# An explain response's tensors: [rows, features, outputs] and [outputs].
CONTRIBUTIONS = "contributions"
BASE_VALUES = "base_values"
EXPLANATION_OUTPUTS = (CONTRIBUTIONS, BASE_VALUES)
# Every datatype of the protocol. Values are read as JSON numbers (or strings for BYTES) and
# checked per feature, so the declared type only has to be one of these.
DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)


# The binary tensor data extension (KServe, Triton): a JSON header of this many bytes, then the
# tensors' bytes, in the order of the inputs (or outputs) that name their binary_data_size.
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"
# Fixed-size datatypes as little-endian numpy types; BYTES is length-prefixed, element by element.
BINARY_TYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
BYTES_LENGTH = struct.Struct("<I")


class InferRequest(NamedTuple):
    # A NamedTuple, as Prediction (see there).
    matrix: np.ndarray
    id: str | None
    # Output names asked for; None means all the model has.
    outputs: list[str] | None
    # The outputs to answer with as binary data (the binary tensor extension).
    binary_outputs: frozenset[str]
    binary_by_default: bool


@dataclass(frozen=True)
class Outputs:
    """The response's output tensors; those asked for as binary carry `binary_data_size` and
    their bytes are in `blobs`, in the same order."""

    tensors: list[dict[str, Any]]
    blobs: list[bytes]


def split_body(raw: bytes, header_length: str | None) -> tuple[Any, memoryview | None]:
    """The request's JSON object and, with the binary extension, the bytes after it."""
    if header_length is None:
        return _json(raw), None
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise InvalidInput(
            f"{HEADER_LENGTH} is {header_length!r}: it must be the length in bytes of the JSON "
            f"at the start of the body ({len(raw)} bytes)"
        )
    length = int(header_length)
    return _json(raw[:length]), memoryview(raw)[length:]


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None


def output_names(classification: bool) -> list[str]:
    return [PREDICT, PREDICT_PROBA] if classification else [PREDICT]


def read_request(body: Any, features: Features, binary: memoryview | None = None) -> InferRequest:
    if type(body) is not dict:
        raise InvalidInput("the request must be a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidInput("'id' must be a string")
    inputs = body.get("inputs")
    if type(inputs) is not list or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    blobs = _Blobs(binary)
    tensors = [_tensor(i, tensor, blobs) for i, tensor in enumerate(inputs)]
    blobs.check_all_read()
    requested = _requested(body.get("outputs"))
    return InferRequest(
        _matrix(tensors, features),
        request_id,
        None if requested is None else [name for name, _ in requested],
        frozenset(name for name, binary_data in (requested or []) if binary_data),
        _parameter(body, "binary_data_output", "the request") is True,
    )


def write_outputs(
    prediction: Prediction, labels: list[str] | None, request: InferRequest, wanted: list[str]
) -> Outputs:
    """`labels`: the predicted class labels of a classifier, None for a regressor."""
    rows = len(prediction.outputs)
    outputs = Outputs([], [])
    for name in wanted:
        binary = request.binary_by_default or name in request.binary_outputs
        if name == PREDICT and labels is not None:
            _output(outputs, name, [rows], "BYTES", labels, binary)
        elif name == PREDICT:
            _output(outputs, name, [rows], "FP64", prediction.outputs, binary)
        elif prediction.probabilities is not None:
            probabilities = prediction.probabilities
            _output(outputs, name, list(probabilities.shape), "FP64", probabilities, binary)
    return outputs


def write_explanation(
    explanation: Explanation, request: InferRequest, wanted: list[str]
) -> Outputs:
    outputs = Outputs([], [])
    for name in wanted:
        binary = request.binary_by_default or name in request.binary_outputs
        tensor = explanation.contributions if name == CONTRIBUTIONS else explanation.base_values
        _output(outputs, name, list(tensor.shape), "FP64", tensor, binary)
    return outputs


def check_outputs(wanted: list[str] | None, available: list[str]) -> list[str]:
    if wanted is None:
        return available
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InvalidInput(
            f"unknown output(s) {', '.join(map(repr, unknown))}; this model has "
            f"{', '.join(map(repr, available))}"
        )
    return wanted


class _Tensor(NamedTuple):
    name: str
    shape: list[int]
    data: list[Any]


class _Blobs:
    """The bytes after the JSON header, taken tensor by tensor."""

    def __init__(self, binary: memoryview | None) -> None:
        self._binary = binary
        self._offset = 0

    def take(self, name: str, size: Any) -> memoryview:
        if self._binary is None:
            raise InvalidInput(
                f"input {name!r} has binary_data_size but the request has no "
                f"{HEADER_LENGTH} header: send the JSON's length in it, the tensors after the JSON"
            )
        if type(size) is not int or size < 0:
            raise InvalidInput(f"input {name!r}: binary_data_size must be a non-negative integer")
        end = self._offset + size
        if end > len(self._binary):
            raise InvalidInput(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(self._binary) - self._offset} bytes left after the JSON and the tensors "
                "before it)"
            )
        chunk = self._binary[self._offset : end]
        self._offset = end
        return chunk

    def check_all_read(self) -> None:
        if self._binary is not None and self._offset != len(self._binary):
            raise InvalidInput(
                f"the body has {len(self._binary) - self._offset} bytes after the JSON that no "
                "input's binary_data_size accounts for"
            )


def _decode(name: str, datatype: str, chunk: memoryview, count: int) -> list[Any]:
    if datatype == "BYTES":
        return _decode_bytes(name, chunk, count)
    dtype = np.dtype(BINARY_TYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {name!r}: {count} {datatype} values take {count * dtype.itemsize} bytes, "
            f"but binary_data_size is {len(chunk)}"
        )
    # As the JSON form reads: Python numbers, checked per feature (NaN, booleans) the same way.
    return list(np.frombuffer(chunk, dtype=dtype).tolist())


def _decode_bytes(name: str, chunk: memoryview, count: int) -> list[Any]:
    values, offset = [], 0
    for _ in range(count):
        if offset + BYTES_LENGTH.size > len(chunk):
            raise InvalidInput(f"input {name!r}: the BYTES data ends before its {count} elements")
        (length,) = BYTES_LENGTH.unpack_from(chunk, offset)
        offset += BYTES_LENGTH.size
        if offset + length > len(chunk):
            raise InvalidInput(f"input {name!r}: a BYTES element runs past binary_data_size")
        try:
            values.append(bytes(chunk[offset : offset + length]).decode())
        except UnicodeDecodeError:
            raise InvalidInput(f"input {name!r}: a BYTES element is not UTF-8 text") from None
        offset += length
    if offset != len(chunk):
        raise InvalidInput(f"input {name!r}: the BYTES data holds more than {count} elements")
    return values


def _parameter(holder: dict[str, Any], key: str, where: str) -> Any:
    parameters = holder.get("parameters")
    if parameters is None:
        return None
    if type(parameters) is not dict:
        raise InvalidInput(f"{where}: 'parameters' must be an object")
    return parameters.get(key)


def _tensor(index: int, tensor: Any, blobs: _Blobs) -> _Tensor:
    if type(tensor) is not dict:
        raise InvalidInput(f"input {index} must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if type(name) is not str:
        raise InvalidInput(f"input {index} needs a string 'name'")
    shape = tensor.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape) or not shape:
        raise InvalidInput(f"input {name!r}: 'shape' must be a list of non-negative integers")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(sorted(DATATYPES))}"
        )
    size = _parameter(tensor, "binary_data_size", f"input {name!r}")
    if size is not None:
        if "data" in tensor:
            raise InvalidInput(f"input {name!r} has both binary_data_size and 'data': send one")
        return _Tensor(
            name, shape, _decode(name, datatype, blobs.take(name, size), math.prod(shape))
        )
    data = _flat(tensor.get("data"), name)
    if len(data) != math.prod(shape):
        raise InvalidInput(
            f"input {name!r} has shape {shape}, which holds {math.prod(shape)} values, but its "
            f"data has {len(data)}"
        )
    return _Tensor(name, shape, data)


def _flat(data: Any, name: str) -> list[Any]:
    """The protocol allows data flat or nested row-major; nested lists are flattened."""
    if type(data) is not list:
        raise InvalidInput(f"input {name!r}: 'data' must be a list")
    while data and type(data[0]) is list and all(type(item) is list for item in data):
        data = [value for item in data for value in item]
    return data


def _matrix(tensors: list[_Tensor], features: Features) -> np.ndarray:
    width = len(features.names)
    if len(tensors) == 1 and len(tensors[0].shape) == 2:
        tensor = tensors[0]
        rows, columns = tensor.shape
        if columns != width:
            raise InvalidInput(
                f"input {tensor.name!r} has {columns} columns (shape {tensor.shape}); the model "
                f"takes {width} features: {', '.join(map(repr, features.names))}"
            )
        features.check_rows(rows)
        return features.from_flat(tensor.data, rows)
    # One tensor per feature, named by it: how mixed numeric and categorical inputs travel.
    rows = tensors[0].shape[0]
    for tensor in tensors:
        if tensor.shape not in ([rows], [rows, 1]):
            raise InvalidInput(
                f"input {tensor.name!r} has shape {tensor.shape}: send either one tensor of shape "
                f"[rows, {width}] or one tensor of shape [rows] per feature, all with the same rows"
            )
    by_name = {tensor.name: tensor.data for tensor in tensors}
    if len(by_name) != len(tensors):
        raise InvalidInput("two inputs have the same name")
    features.check_rows(rows)
    return features.from_columns(by_name)


def _requested(outputs: Any) -> list[tuple[str, bool]] | None:
    """The outputs asked for, each with whether it is asked for as binary data."""
    if outputs is None:
        return None
    if type(outputs) is not list or not all(
        type(o) is dict and type(o.get("name")) is str for o in outputs
    ):
        raise InvalidInput("'outputs' must be a list of objects with a string 'name'")
    return [
        (o["name"], _parameter(o, "binary_data", f"output {o['name']!r}") is True) for o in outputs
    ]


def _output(
    outputs: Outputs, name: str, shape: list[int], datatype: str, data: Any, binary: bool
) -> None:
    tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
    if not binary:
        tensor["data"] = data.ravel() if isinstance(data, np.ndarray) else data
    else:
        blob = (
            b"".join(BYTES_LENGTH.pack(len(v)) + v for v in (label.encode() for label in data))
            if datatype == "BYTES"
            else np.ascontiguousarray(data, dtype=BINARY_TYPES[datatype]).tobytes()
        )
        tensor["parameters"] = {"binary_data_size": len(blob)}
        outputs.blobs.append(blob)
    outputs.tensors.append(tensor)
