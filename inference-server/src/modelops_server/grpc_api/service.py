"""The Open Inference Protocol's gRPC service, over the same data plane as the REST API: the
same model, the same checks and messages (a gRPC request is read as the JSON request it stands
for), the same metrics. Started and stopped with the app (`app.create_app`).

Tensors come typed (`contents`) or raw (`raw_input_contents`, what Triton's clients send); the
answer comes the same way, so each kind of client reads it as it expects."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np

from .. import v2
from ..dataplane import DataPlane
from ..errors import (
    HTTP_STATUS,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    ServingError,
)
from ..metrics import Metrics
from ..settings import Settings
from . import inference_pb2 as pb
from . import inference_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE = "/inference.GRPCInferenceService/"
GRPC_STATUS: dict[type[ServingError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelNotReady: grpc.StatusCode.UNAVAILABLE,
}
# The InferTensorContents field each datatype's values travel in; FP16 has none (raw only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# Seconds calls in flight get to finish when the server stops.
STOP_GRACE_SECONDS = 10

Reply = TypeVar("Reply")


async def start(dataplane: DataPlane, metrics: Metrics, settings: Settings) -> grpc.aio.Server:
    """The service on settings.grpc_port, serving; raises if it cannot listen there."""
    server = grpc.aio.server(
        options=[
            # The REST API's body limit is a gRPC message's limit too.
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(dataplane, metrics), server)
    host, port = settings.host, settings.grpc_port
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"the gRPC server cannot listen on {address}")
    await server.start()
    log.info("gRPC (the Open Inference Protocol) on %s", address)
    return server


async def stop(server: grpc.aio.Server) -> None:
    await server.stop(STOP_GRACE_SECONDS)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, dataplane: DataPlane, metrics: Metrics) -> None:
        self._dataplane = dataplane
        self._metrics = metrics

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return await self._answer("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return await self._answer(
            "ServerReady",
            context,
            lambda: pb.ServerReadyResponse(ready=self._dataplane.model.ready),
        )

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        def ready() -> pb.ModelReadyResponse:
            served = self._dataplane.model_ready(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=served)

        return await self._answer("ModelReady", context, ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return await self._answer(
            "ServerMetadata",
            context,
            lambda: pb.ServerMetadataResponse(**self._dataplane.server_metadata()),
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        def metadata() -> pb.ModelMetadataResponse:
            found = self._dataplane.model_metadata(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=found["name"],
                versions=found["versions"],
                platform=found["platform"],
                inputs=[tensor(**t) for t in found["inputs"]],
                outputs=[tensor(**t) for t in found["outputs"]],
            )

        return await self._answer("ModelMetadata", context, metadata)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        async def infer() -> pb.ModelInferResponse:
            body, binary = read_request(request)
            answer, blobs = await self._dataplane.infer(
                request.model_name,
                request.model_version or None,
                body,
                binary,
            )
            return write_response(answer, blobs)

        return await self._answer("ModelInfer", context, infer)

    async def _answer(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        call: Callable[[], Reply] | Callable[[], Awaitable[Reply]],
    ) -> Reply:
        """The call's reply, or its error as the gRPC status for it; counted and timed in the
        REST API's series, under the method's path and the HTTP status the error would have."""
        started = time.perf_counter()
        try:
            reply = call()
            if isinstance(reply, Awaitable):
                reply = await reply
        except ServingError as exc:
            code, status, message = GRPC_STATUS[type(exc)], HTTP_STATUS[type(exc)], str(exc)
        except Exception as exc:
            log.exception("unexpected error serving a gRPC call", exc_info=exc)
            code, status = grpc.StatusCode.INTERNAL, 500
            message = f"internal error: {type(exc).__name__}"
        else:
            self._metrics.request(SERVICE + method, 200, time.perf_counter() - started)
            return reply
        # Counted before the status leaves: abort() awaits its sending, and this event loop
        # answers a client that reads /metrics as soon as it has its error meanwhile.
        self._metrics.request(SERVICE + method, status, time.perf_counter() - started)
        await context.abort(code, message)
        raise AssertionError("context.abort always raises")


def read_request(request: pb.ModelInferRequest) -> tuple[dict[str, Any], memoryview | None]:
    """The JSON request `request` stands for (with the binary tensor extension for raw contents),
    so both protocols share one reading of it."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: send "
            "one per input, in the order of the inputs"
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        given: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if raw:
            if tensor.HasField("contents"):
                raise InvalidInput(
                    f"input {tensor.name!r} has contents, but the request sends "
                    "raw_input_contents: send every input one way"
                )
            given["parameters"] = {"binary_data_size": len(raw[index])}
        else:
            given["data"] = _contents(tensor)
        inputs.append(given)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    if request.outputs:
        body["outputs"] = [{"name": output.name} for output in request.outputs]
    if raw:
        body["parameters"] = {"binary_data_output": True}
    return body, memoryview(b"".join(raw)) if raw else None


def write_response(answer: dict[str, Any], blobs: list[bytes]) -> pb.ModelInferResponse:
    outputs = []
    for tensor in answer["outputs"]:
        output = pb.ModelInferResponse.InferOutputTensor(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        if "data" in tensor:
            _fill(output.contents, tensor["datatype"], tensor["data"])
        outputs.append(output)
    return pb.ModelInferResponse(
        model_name=answer["model_name"],
        model_version=answer["model_version"],
        id=answer.get("id", ""),
        outputs=outputs,
        raw_output_contents=blobs,
    )


def _contents(tensor: pb.ModelInferRequest.InferInputTensor) -> list[Any]:
    field = CONTENTS.get(tensor.datatype)
    if field is None:
        if tensor.datatype in v2.BINARY_TYPES:
            raise InvalidInput(
                f"input {tensor.name!r}: {tensor.datatype} has no typed contents field; send it "
                "in raw_input_contents"
            )
        return []  # an unknown datatype: the reading names it
    values: list[Any] = list(getattr(tensor.contents, field))
    if not values:
        sent = [descriptor.name for descriptor, _ in tensor.contents.ListFields()]
        if sent:
            raise InvalidInput(
                f"input {tensor.name!r}: {tensor.datatype} values go in contents.{field}, but "
                f"this tensor has {', '.join(sent)}"
            )
    if tensor.datatype == "BYTES":
        try:
            return [value.decode() for value in values]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input {tensor.name!r}: a BYTES element is not UTF-8 text"
            ) from None
    return values


def _fill(contents: pb.InferTensorContents, datatype: str, data: Any) -> None:
    if datatype == "BYTES":
        contents.bytes_contents.extend(label.encode() for label in data)
    else:
        values = data.tolist() if isinstance(data, np.ndarray) else data
        getattr(contents, CONTENTS[datatype]).extend(values)
