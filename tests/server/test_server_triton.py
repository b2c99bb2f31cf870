"""Triton's own Python clients (`tritonclient[http]`, sync and asyncio) against a real server
process: the binary tensor extension in, out and mixed with JSON, as those clients send by
default; and what a malformed binary request gets."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from conftest import Artifact, Process, Server  # type: ignore[import-not-found]

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.fixture
def address(serve_process: Callable[[Artifact], Process], iris_forest: Artifact) -> str:
    return serve_process(iris_forest).url.removeprefix("http://")


def scikit_learn(artifact: Artifact, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    model = joblib.load(Path(artifact.directory) / "model.joblib")
    return [str(label) for label in model.predict(rows)], model.predict_proba(rows)


def tensor(rows: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    given = triton.InferInput("input-0", list(rows.shape), datatype)
    given.set_data_from_numpy(rows, binary_data=binary)
    return given


def outputs(binary: bool) -> list[triton.InferRequestedOutput]:
    return [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]


def test_binary_in_and_binary_out_as_tritons_client_sends_them(
    address: str, iris_forest: Artifact
) -> None:
    client = triton.InferenceServerClient(address)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.is_model_ready(iris_forest.name)

    result = client.infer(iris_forest.name, [tensor(ROWS, "FP64", True)], outputs=outputs(True))

    labels, probabilities = scikit_learn(iris_forest, ROWS)
    assert [label.decode() for label in result.as_numpy("predict")] == labels
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities)
    assert result.get_output("predict")["parameters"]["binary_data_size"] > 0


@pytest.mark.parametrize(
    ("datatype", "binary_in", "binary_out"),
    [("FP64", False, True), ("FP32", True, False), ("INT64", True, True)],
)
def test_binary_and_json_mix_either_way(
    address: str, iris_forest: Artifact, datatype: str, binary_in: bool, binary_out: bool
) -> None:
    rows = ROWS.round() if datatype == "INT64" else ROWS
    typed = rows.astype({"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}[datatype])
    client = triton.InferenceServerClient(address)

    result = client.infer(
        iris_forest.name, [tensor(typed, datatype, binary_in)], outputs=outputs(binary_out)
    )

    labels, probabilities = scikit_learn(iris_forest, typed.astype(np.float64))
    predicted = result.as_numpy("predict")
    assert [p.decode() if isinstance(p, bytes) else p for p in predicted] == labels
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), probabilities)


def test_the_asyncio_client_gets_binary_answers(address: str, iris_forest: Artifact) -> None:
    async def infer() -> triton_aio.InferResult:
        async with triton_aio.InferenceServerClient(address) as client:
            given = triton_aio.InferInput("input-0", list(ROWS.shape), "FP64")
            given.set_data_from_numpy(ROWS)
            wanted = [triton_aio.InferRequestedOutput("predict", binary_data=True)]
            return await client.infer(iris_forest.name, [given], outputs=wanted)

    result = asyncio.run(infer())

    labels, _ = scikit_learn(iris_forest, ROWS)
    assert [label.decode() for label in result.as_numpy("predict")] == labels
    assert result.as_numpy("predict_proba") is None, "only the output asked for"


def test_binary_bytes_inputs_carry_categories(
    serve: Callable[..., Server], fruit_forest: Artifact
) -> None:
    server = serve(fruit_forest)
    model = joblib.load(Path(fruit_forest.directory) / "model.joblib")
    sizes = np.array([2.0, 8.0]).tobytes()
    colours = b"".join(struct.pack("<I", len(c)) + c for c in (b"red", b"blue"))
    header = (
        b'{"inputs": ['
        b'{"name": "size", "shape": [2], "datatype": "FP64", '
        b'"parameters": {"binary_data_size": %d}},'
        b'{"name": "colour", "shape": [2], "datatype": "BYTES", '
        b'"parameters": {"binary_data_size": %d}}]}' % (len(sizes), len(colours))
    )
    answer = server.client.post(
        f"/v2/models/{server.artifact.name}/infer",
        content=header + sizes + colours,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code == 200, answer.text
    expected = model.predict(np.array([[2.0, "red"], [8.0, "blue"]], dtype=object))
    assert answer.json()["outputs"][0]["data"] == list(expected)


@pytest.mark.parametrize(
    ("size", "extra", "message"),
    [
        (32 * 5, b"", "runs past the end of the body"),
        (32 * 4, bytes(96), "4 FP64 values take 32 bytes, but binary_data_size is 128"),
        (32, b"x", "1 bytes after the JSON that no input's binary_data_size accounts for"),
    ],
)
def test_a_malformed_binary_request_gets_a_clear_400(
    iris_server: Server, size: int, extra: bytes, message: str
) -> None:
    header = (
        b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", '
        b'"parameters": {"binary_data_size": %d}}]}' % size
    )
    answer = iris_server.client.post(
        f"/v2/models/{iris_server.artifact.name}/infer",
        content=header + ROWS[0].tobytes() + extra,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_binary_data_without_the_length_header_is_explained(iris_server: Server) -> None:
    answer = iris_server.infer(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        }
    )
    assert answer.status_code == 400
    assert "no Inference-Header-Content-Length header" in answer.json()["error"]
