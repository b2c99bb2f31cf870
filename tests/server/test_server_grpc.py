"""The Open Inference Protocol over gRPC, against a real `modelops-serve` process: Triton's own
clients (`tritonclient[grpc]`, sync and asyncio, raw tensors), typed contents through the
protocol's messages as Triton's package ships them, errors as gRPC statuses with the REST API's
messages, and the calls in the server's metrics."""

from __future__ import annotations

import asyncio
import filecmp
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import joblib
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from conftest import Artifact, Process  # type: ignore[import-not-found]
from modelops_server.grpc_api import generate
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.fixture
def served(serve_process: Callable[[Artifact], Process], iris_forest: Artifact) -> Process:
    return serve_process(iris_forest)


@pytest.fixture
def stub(served: Process) -> pb_grpc.GRPCInferenceServiceStub:
    channel = grpc.insecure_channel(served.grpc)
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def scikit_learn(artifact: Artifact, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    model = joblib.load(Path(artifact.directory) / "model.joblib")
    return [str(label) for label in model.predict(rows)], model.predict_proba(rows)


def tensor(rows: np.ndarray, datatype: str = "FP64") -> triton.InferInput:
    given = triton.InferInput("input-0", list(rows.shape), datatype)
    given.set_data_from_numpy(rows)
    return given


def test_tritons_client_checks_health_and_metadata(served: Process, iris_forest: Artifact) -> None:
    client = triton.InferenceServerClient(served.grpc)

    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(iris_forest.name)
    assert client.is_model_ready(iris_forest.name, iris_forest.version)
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    metadata = client.get_model_metadata(iris_forest.name, as_json=True)
    assert metadata["versions"] == [iris_forest.version]
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    assert [output["name"] for output in metadata["outputs"]] == ["predict", "predict_proba"]


@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16", "INT64"])
def test_tritons_client_infers_with_raw_tensors(
    served: Process, iris_forest: Artifact, datatype: str
) -> None:
    rows = ROWS.round() if datatype == "INT64" else ROWS
    typed = rows.astype(
        {"FP64": np.float64, "FP32": np.float32, "FP16": np.float16}.get(datatype, np.int64)
    )
    client = triton.InferenceServerClient(served.grpc)

    result = client.infer(iris_forest.name, [tensor(typed, datatype)], request_id="r-1")

    labels, probabilities = scikit_learn(iris_forest, typed.astype(np.float64))
    assert [label.decode() for label in result.as_numpy("predict")] == labels
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (
        iris_forest.name,
        iris_forest.version,
        "r-1",
    )


def test_the_asyncio_client_gets_the_output_it_asks_for(
    served: Process, iris_forest: Artifact
) -> None:
    async def infer() -> triton_aio.InferResult:
        async with triton_aio.InferenceServerClient(served.grpc) as client:
            given = triton_aio.InferInput("input-0", list(ROWS.shape), "FP64")
            given.set_data_from_numpy(ROWS)
            wanted = [triton_aio.InferRequestedOutput("predict")]
            return await client.infer(iris_forest.name, [given], outputs=wanted)

    result = asyncio.run(infer())

    labels, _ = scikit_learn(iris_forest, ROWS)
    assert [label.decode() for label in result.as_numpy("predict")] == labels
    assert result.as_numpy("predict_proba") is None


def test_typed_contents_get_typed_contents_back(
    stub: pb_grpc.GRPCInferenceServiceStub, iris_forest: Artifact
) -> None:
    request = pb.ModelInferRequest(model_name=iris_forest.name)
    given = request.inputs.add(name="input-0", datatype="FP64", shape=list(ROWS.shape))
    given.contents.fp64_contents.extend(ROWS.ravel().tolist())

    response = stub.ModelInfer(request)

    labels, probabilities = scikit_learn(iris_forest, ROWS)
    assert not response.raw_output_contents
    predict, predict_proba = response.outputs
    assert [label.decode() for label in predict.contents.bytes_contents] == labels
    assert list(predict_proba.shape) == [3, 3]
    assert list(predict_proba.contents.fp64_contents) == probabilities.ravel().tolist()


def test_categorical_features_travel_as_bytes_tensors(
    serve_process: Callable[[Artifact], Process], fruit_forest: Artifact
) -> None:
    client = triton.InferenceServerClient(serve_process(fruit_forest).grpc)
    size = triton.InferInput("size", [2], "FP64")
    size.set_data_from_numpy(np.array([2.0, 8.0]))
    colour = triton.InferInput("colour", [2], "BYTES")
    colour.set_data_from_numpy(np.array([b"red", b"blue"], dtype=object))

    result = client.infer(fruit_forest.name, [size, colour])

    model = joblib.load(Path(fruit_forest.directory) / "model.joblib")
    expected = model.predict(np.array([[2.0, "red"], [8.0, "blue"]], dtype=object))
    assert [label.decode() for label in result.as_numpy("predict")] == list(expected)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (
            lambda r: r.inputs[0].shape.__setitem__(1, 3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "has shape [4, 3], which holds 12 values, but its data has 16",
        ),
        (
            lambda r: setattr(r, "model_name", "nope"),
            grpc.StatusCode.NOT_FOUND,
            "model 'nope' is not served here",
        ),
        (
            lambda r: setattr(r, "model_version", "v0"),
            grpc.StatusCode.NOT_FOUND,
            "has no version 'v0' here",
        ),
        (
            lambda r: r.outputs.add(name="predict_log_proba"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown output(s) 'predict_log_proba'",
        ),
        (
            lambda r: r.raw_input_contents.extend([b"", b""]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "raw_input_contents has 2 entries for 1 inputs",
        ),
        (
            lambda r: r.inputs[0].contents.CopyFrom(
                pb.InferTensorContents(fp32_contents=[1.0] * 16)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FP64 values go in contents.fp64_contents, but this tensor has fp32_contents",
        ),
        (
            lambda r: setattr(r.inputs[0], "datatype", "FP16"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FP16 has no typed contents field; send it in raw_input_contents",
        ),
    ],
)
def test_a_bad_request_gets_the_status_and_message_it_would_over_rest(
    stub: pb_grpc.GRPCInferenceServiceStub,
    iris_forest: Artifact,
    change: Callable[[pb.ModelInferRequest], object],
    code: grpc.StatusCode,
    message: str,
) -> None:
    request = pb.ModelInferRequest(model_name=iris_forest.name)
    given = request.inputs.add(name="input-0", datatype="FP64", shape=[4, 4])
    given.contents.fp64_contents.extend([1.0] * 16)
    change(request)

    with pytest.raises(grpc.RpcError) as refused:
        stub.ModelInfer(request)

    assert refused.value.code() == code
    assert message in refused.value.details()


def test_tritons_client_sees_the_servers_message(served: Process, iris_forest: Artifact) -> None:
    client = triton.InferenceServerClient(served.grpc)
    wide = np.ones((1, 5))

    with pytest.raises(InferenceServerException, match="has 5 columns"):
        client.infer(iris_forest.name, [tensor(wide)])


def test_grpc_calls_are_in_the_servers_metrics(served: Process, iris_forest: Artifact) -> None:
    client = triton.InferenceServerClient(served.grpc)
    client.infer(iris_forest.name, [tensor(ROWS)])
    with pytest.raises(InferenceServerException):
        client.infer("nope", [tensor(ROWS)])

    scraped = scrape(served)

    method = 'endpoint="/inference.GRPCInferenceService/ModelInfer"'
    assert f'modelops_requests_total{{code="200",{method}}} 1.0' in scraped
    assert f'modelops_requests_total{{code="404",{method}}} 1.0' in scraped
    assert "modelops_batch_size_count 1.0" in scraped


def scrape(served: Process) -> str:
    with urllib.request.urlopen(f"{served.url}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def test_the_generated_code_is_the_protos(tmp_path: Path) -> None:
    generate.generate(tmp_path)

    committed = Path(generate.__file__).parent
    made = tmp_path / "modelops_server" / "grpc_api"
    names = ["inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py"]
    _, different, missing = filecmp.cmpfiles(made, committed, names, shallow=False)
    assert not different and not missing, (
        f"{different + missing} differ from inference.proto: run "
        "`uv run python -m modelops_server.grpc_api.generate`"
    )
