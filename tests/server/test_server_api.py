"""The simple API and the Open Inference Protocol v2 on a random forest over iris."""

from __future__ import annotations

from collections.abc import Callable

import joblib
import numpy as np
import pytest
from conftest import Artifact, Server
from sklearn.datasets import load_iris

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]
CLASSES = ["setosa", "versicolor", "virginica"]


def test_predict_takes_rows_as_lists_or_objects_and_answers_like_the_model(
    iris_server: Server, iris_forest: Artifact
) -> None:
    keyed = dict(zip(iris_forest.features, VIRGINICA, strict=True))
    response = iris_server.predict({"instances": [SETOSA, keyed]})

    assert response.status_code == 200
    body = response.json()
    model = joblib.load(iris_forest.directory / "model.joblib")
    assert body["predictions"] == list(model.predict([SETOSA, VIRGINICA]))
    assert body["predictions"] == ["setosa", "virginica"]
    assert body["classes"] == CLASSES
    np.testing.assert_array_equal(body["probabilities"], model.predict_proba([SETOSA, VIRGINICA]))
    assert (body["model_name"], body["model_version"]) == (iris_forest.name, iris_forest.version)


def test_predict_answers_a_regressor_with_values_only(
    serve: Callable[..., Server], trained: Callable[..., Artifact]
) -> None:
    diabetes = trained("Ridge", dataset="diabetes")
    row = [0.01] * len(diabetes.features)

    body = serve(diabetes).predict({"instances": [row]}).json()

    model = joblib.load(diabetes.directory / "model.joblib")
    assert body["predictions"] == pytest.approx(list(model.predict([row])), rel=1e-12)
    assert "probabilities" not in body and "classes" not in body


def test_health_endpoints(iris_server: Server) -> None:
    client = iris_server.client
    for path in ("/v2/health/live", "/healthz"):
        assert client.get(path).json() == {"live": True}
    for path in ("/v2/health/ready", "/readyz", "/v2/models/iris-randomforestclassifier/ready"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json() == {"ready": True}


def test_server_metadata(iris_server: Server) -> None:
    body = iris_server.client.get("/v2").json()

    assert body["name"] == "modelops-inference-server"
    assert body["version"] and body["extensions"] == ["binary_tensor_data"]


def test_model_metadata_describes_the_tensors(iris_server: Server, iris_forest: Artifact) -> None:
    name, version = iris_forest.name, iris_forest.version
    body = iris_server.client.get(f"/v2/models/{name}").json()

    assert body["name"] == name
    assert body["versions"] == [version]
    assert body["platform"] == "scikit-learn"
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    parameters = body["parameters"]
    assert [f["name"] for f in parameters["features"]] == iris_forest.features
    assert parameters["classes"] == CLASSES
    assert parameters["sha256"] == iris_forest.metadata["sha256"]
    assert parameters["runtime"] == "compiled"
    assert iris_server.client.get(f"/v2/models/{name}/versions/{version}").json() == body


def test_infer_answers_with_protocol_tensors(iris_server: Server, iris_forest: Artifact) -> None:
    request = {
        "id": "request-1",
        "inputs": [
            {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": SETOSA + VIRGINICA}
        ],
    }
    body = iris_server.infer(request).json()

    assert body["model_name"] == iris_forest.name
    assert body["model_version"] == iris_forest.version
    assert body["id"] == "request-1"
    predict, proba = body["outputs"]
    assert predict == {
        "name": "predict",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["setosa", "virginica"],
    }
    assert (proba["name"], proba["shape"], proba["datatype"]) == ("predict_proba", [2, 3], "FP64")
    model = joblib.load(iris_forest.directory / "model.joblib")
    np.testing.assert_array_equal(
        np.reshape(proba["data"], (2, 3)), model.predict_proba([SETOSA, VIRGINICA])
    )


def test_infer_takes_nested_data_one_tensor_per_feature_and_the_versioned_path(
    iris_server: Server, iris_forest: Artifact
) -> None:
    name, version = iris_forest.name, iris_forest.version
    nested = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [SETOSA, VIRGINICA]}]
    }
    per_feature = {
        "inputs": [
            {"name": feature, "shape": [2], "datatype": "FP64", "data": [a, b]}
            for feature, a, b in zip(iris_forest.features, SETOSA, VIRGINICA, strict=True)
        ]
    }
    versioned = f"/v2/models/{name}/versions/{version}/infer"

    for request, path in ((nested, None), (per_feature, None), (nested, versioned)):
        response = iris_server.infer(request, path)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == ["setosa", "virginica"]


def test_infer_returns_only_the_outputs_asked_for(iris_server: Server) -> None:
    request = {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}],
        "outputs": [{"name": "predict_proba"}],
    }
    body = iris_server.infer(request).json()

    assert [o["name"] for o in body["outputs"]] == ["predict_proba"]
    assert "id" not in body


def test_a_regressor_infers_fp64_predictions(
    serve: Callable[..., Server], trained: Callable[..., Artifact]
) -> None:
    diabetes = trained("Ridge", dataset="diabetes")
    server = serve(diabetes)
    width = len(diabetes.features)
    request = {
        "inputs": [
            {"name": "input-0", "shape": [1, width], "datatype": "FP64", "data": [0.0] * width}
        ]
    }

    outputs = server.infer(request).json()["outputs"]
    metadata = server.client.get(f"/v2/models/{diabetes.name}").json()

    assert [(o["name"], o["shape"], o["datatype"]) for o in outputs] == [("predict", [1], "FP64")]
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def test_the_whole_iris_dataset_in_one_batch(iris_server: Server, iris_forest: Artifact) -> None:
    iris = load_iris()
    model = joblib.load(iris_forest.directory / "model.joblib")

    body = iris_server.predict({"instances": iris.data.tolist()}).json()

    assert body["predictions"] == list(model.predict(iris.data))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_fastapis_pages_that_load_scripts_from_a_cdn_are_off(
    iris_server: Server, path: str
) -> None:
    assert iris_server.client.get(path).status_code == 404


def test_the_openapi_schema_documents_every_endpoint_and_body(iris_server: Server) -> None:
    schema = iris_server.client.get("/openapi.json").json()

    assert {
        "/predict",
        "/metrics",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
    } <= set(schema["paths"])
    predict = schema["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    components = schema["components"]["schemas"]
    assert {
        "PredictRequest",
        "PredictResponse",
        "InferenceRequest",
        "RequestInput",
        "Error",
    } <= set(components)
    assert "400" in predict["responses"] and "413" in predict["responses"]
