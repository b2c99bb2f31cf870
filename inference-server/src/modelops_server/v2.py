"""The Open Inference Protocol's tensors: reading an infer request into a matrix and writing
predictions as output tensors. Nothing here knows about HTTP."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInput
from .inputs import Features
from .prediction import Prediction

PREDICT = "predict"
PREDICT_PROBA = "predict_proba"
# Every datatype of the protocol. Values are read as JSON numbers (or strings for BYTES) and
# checked per feature, so the declared type only has to be one of these.
DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)


@dataclass(frozen=True)
class InferRequest:
    matrix: np.ndarray
    id: str | None
    # Output names asked for; None means all the model has.
    outputs: list[str] | None


def output_names(classification: bool) -> list[str]:
    return [PREDICT, PREDICT_PROBA] if classification else [PREDICT]


def read_request(body: Any, features: Features) -> InferRequest:
    if type(body) is not dict:
        raise InvalidInput("the request must be a JSON object with an 'inputs' list")
    request_id = body.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidInput("'id' must be a string")
    inputs = body.get("inputs")
    if type(inputs) is not list or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    tensors = [_tensor(i, tensor) for i, tensor in enumerate(inputs)]
    return InferRequest(_matrix(tensors, features), request_id, _requested(body.get("outputs")))


def write_outputs(
    prediction: Prediction, labels: list[str] | None, wanted: list[str]
) -> list[dict[str, Any]]:
    """`labels`: the predicted class labels of a classifier, None for a regressor."""
    rows = len(prediction.outputs)
    outputs = []
    for name in wanted:
        if name == PREDICT and labels is not None:
            outputs.append(_output(name, [rows], "BYTES", labels))
        elif name == PREDICT:
            outputs.append(_output(name, [rows], "FP64", prediction.outputs))
        elif prediction.probabilities is not None:
            probabilities = prediction.probabilities
            outputs.append(_output(name, list(probabilities.shape), "FP64", probabilities.ravel()))
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


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: list[int]
    data: list[Any]


def _tensor(index: int, tensor: Any) -> _Tensor:
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
    while data and all(type(item) is list for item in data):
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


def _requested(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if type(outputs) is not list or not all(
        type(o) is dict and type(o.get("name")) is str for o in outputs
    ):
        raise InvalidInput("'outputs' must be a list of objects with a string 'name'")
    return [o["name"] for o in outputs]


def _output(name: str, shape: list[int], datatype: str, data: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}
