"""A model trained elsewhere (spec.model): one joblib or pickle file with no metadata, fetched
from a real S3-compatible server, over HTTP or from a real MLflow registry, checked against the
digest it was pinned to, and served with its features and classes read off the estimator."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import joblib
import mlflow
import numpy as np
import pytest
from conftest import build_app
from fastapi.testclient import TestClient
from modelops_envtest.object_storage import ObjectStorage
from modelops_server import fetch
from modelops_server.errors import ArtifactError
from modelops_server.settings import Settings
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FILE = "model.joblib"
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def iris_pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Any]:
    """A scaler and a logistic regression fitted on iris with string labels, saved with joblib
    as a user would: (file, its sha256, the pipeline)."""
    iris = load_iris()
    labels = np.asarray(iris.target_names)[iris.target]
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.fit(iris.data, labels)
    path = tmp_path_factory.mktemp("provided") / "iris-pipeline.joblib"
    joblib.dump(pipeline, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), pipeline


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on loopback over a folder: (the folder, its base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def published(web: tuple[Path, str], iris_pipeline: tuple[Path, str, Any]) -> tuple[str, str]:
    """The iris pipeline on the HTTP server: (its URL, its sha256)."""
    root, url = web
    path, sha256, _ = iris_pipeline
    (root / "iris.joblib").write_bytes(path.read_bytes())
    return f"{url}/iris.joblib", sha256


def serve_provided(directory: Path, sha256: str, **settings: Any) -> TestClient:
    app, _ = build_app(
        Settings(model_dir=directory, model_file=FILE, model_sha256=sha256, **settings)
    )
    return TestClient(app, raise_server_exceptions=False)


def test_a_file_in_a_bucket_is_fetched_and_served(
    s3: ObjectStorage, iris_pipeline: tuple[Path, str, Any], tmp_path: Path
) -> None:
    path, sha256, pipeline = iris_pipeline
    boto3.client("s3").upload_file(str(path), "models", "team-a/iris/pipeline.joblib")
    directory = tmp_path / "models" / f"v{sha256[:12]}"

    fetch.fetch("s3://models/team-a/iris/pipeline.joblib", directory, sha256, FILE)

    assert sorted(p.name for p in directory.iterdir()) == [FILE]
    client = serve_provided(directory, sha256, model_name="iris-byo")
    answer = client.post("/predict", json={"instances": [SETOSA]}).json()
    assert answer["predictions"] == ["setosa"]
    assert answer["model_version"] == f"v{sha256[:12]}"
    assert answer["probabilities"][0] == pytest.approx(pipeline.predict_proba([SETOSA])[0].tolist())
    metadata = client.get("/v2/models/iris-byo").json()
    assert [tensor["name"] for tensor in metadata["inputs"]] == ["input-0"]


def test_a_file_at_a_url_is_fetched_and_served(published: tuple[str, str], tmp_path: Path) -> None:
    url, sha256 = published
    directory = tmp_path / "models" / "v1"

    assert (
        fetch.main(
            [
                "--from",
                f"{url}?token=x",
                "--to",
                str(directory),
                "--sha256",
                sha256,
                "--file",
                FILE,
            ]
        )
        == 0
    )

    client = serve_provided(directory, sha256)
    assert client.get("/v2/health/ready").status_code == 200
    answer = client.post("/predict", json={"instances": [SETOSA, [6.7, 3.0, 5.2, 2.3]]}).json()
    assert answer["predictions"] == ["setosa", "virginica"]


def test_a_pickle_of_a_regressor_serves_numbers_under_feature_names(
    web: tuple[Path, str], tmp_path: Path
) -> None:
    """A model fitted on a DataFrame keeps its column names: requests may name them."""
    root, url = web
    diabetes = load_diabetes(as_frame=True)
    ridge = Ridge().fit(diabetes.data, diabetes.target)
    with (root / "ridge.pkl").open("wb") as file:
        pickle.dump(ridge, file)
    sha256 = hashlib.sha256((root / "ridge.pkl").read_bytes()).hexdigest()
    directory = tmp_path / "models" / "v1"
    fetch.fetch(f"{url}/ridge.pkl", directory, sha256, FILE)

    client = serve_provided(directory, sha256, model_name="diabetes")
    row = diabetes.data.iloc[0].to_dict()
    answer = client.post("/predict", json={"instances": [row]}).json()
    assert answer["predictions"][0] == pytest.approx(ridge.predict(diabetes.data.iloc[:1])[0])
    shown = client.get("/v2/models/diabetes").json()
    assert shown["versions"] == [f"v{sha256[:12]}"]
    assert shown["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def test_a_file_that_is_not_the_pinned_one_leaves_nothing_behind(
    published: tuple[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"not the model spec\.model\.sha256 names"):
        fetch.fetch(published[0], tmp_path / "models" / "v1", "0" * 64, FILE)
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize(
    "uri_of,expected",
    [
        (lambda url: f"{url}/missing.joblib", "HTTP 404"),
        (lambda url: "http://127.0.0.1:9/model.joblib", "reachable from the pod"),
        (lambda url: "s3://models/nothing/here.joblib", "check spec.model.uri"),
    ],
    ids=["not found", "no server", "no object"],
)
def test_each_failure_is_one_error_line_naming_spec_model(
    s3: ObjectStorage,
    web: tuple[Path, str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    uri_of: Callable[[str], str],
    expected: str,
) -> None:
    uri = uri_of(web[1])
    code = fetch.main(
        ["--from", uri, "--to", str(tmp_path / "v"), "--sha256", "0" * 64, "--file", FILE]
    )
    [line] = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1
    assert expected in line and "spec.model" in line


def test_a_download_over_the_limit_is_refused(
    web: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = web
    (root / "big.joblib").write_bytes(b"x" * 4096)
    monkeypatch.setenv(fetch.MAX_BYTES_ENV, "1024")
    with pytest.raises(ArtifactError, match=r"larger than 1024 bytes"):
        fetch.fetch(f"{url}/big.joblib", tmp_path / "models" / "v1", "0" * 64, FILE)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_provided_file_without_a_pinned_digest_is_not_served(
    iris_pipeline: tuple[Path, str, Any], tmp_path: Path
) -> None:
    path, _, _ = iris_pipeline
    (tmp_path / FILE).write_bytes(path.read_bytes())
    app, dataplane = build_app(Settings(model_dir=tmp_path, model_file=FILE))
    with TestClient(app) as client:
        assert client.get("/v2/health/ready").status_code == 503
    assert "MODELOPS_MODEL_SHA256" in dataplane.model.problem


def test_a_file_that_holds_no_fitted_estimator_is_not_served(tmp_path: Path) -> None:
    joblib.dump({"weights": [1, 2, 3]}, tmp_path / FILE)
    sha256 = hashlib.sha256((tmp_path / FILE).read_bytes()).hexdigest()
    _, dataplane = build_app(Settings(model_dir=tmp_path, model_file=FILE, model_sha256=sha256))
    assert not dataplane.model.ready
    assert "does not say how many features it takes" in dataplane.model.problem


@pytest.fixture
def registered(
    mlflow_tracking: str, iris_pipeline: tuple[Path, str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """The iris pipeline logged and registered by a user's own MLflow code, as a data scientist
    would: (its models:/ URI, the sha256 of the file its MLmodel names)."""
    _, _, pipeline = iris_pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking)
    mlflow.set_tracking_uri(mlflow_tracking)
    name = f"iris-{uuid.uuid4().hex[:6]}"
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(
            pipeline, name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
        )
    uri = f"models:/{name}/{logged.registered_model_version}"
    # What a user runs to pin it: mlflow artifacts download -u models:/... && sha256sum.
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    [model_file] = [path for path in folder.iterdir() if path.stem == "model"]
    # The user's steps above retry as MLflow's client does by default (a kept-alive connection
    # the server closes as it is reused is reset, now and then); the fetches under test fail
    # at the first error, in words.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return uri, hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_a_model_registered_in_mlflow_is_fetched_and_served(
    registered: tuple[str, str], tmp_path: Path
) -> None:
    uri, sha256 = registered
    directory = tmp_path / "models" / f"v{sha256[:12]}"
    fetch.fetch(uri, directory, sha256, FILE)
    assert sorted(p.name for p in directory.iterdir()) == [FILE]
    client = serve_provided(directory, sha256, model_name="iris")
    answer = client.post("/predict", json={"instances": [SETOSA]}).json()
    assert answer["predictions"] == ["setosa"]


def test_an_mlflow_model_that_is_not_pinned_is_refused(
    registered: tuple[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"not the model spec\.model\.sha256 names"):
        fetch.fetch(registered[0], tmp_path / "models" / "v1", "0" * 64, FILE)
    assert list((tmp_path / "models").iterdir()) == []


def test_an_unknown_mlflow_model_or_server_is_one_error_line(
    registered: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def error_line(uri: str) -> str:
        code = fetch.main(
            ["--from", uri, "--to", str(tmp_path / "v"), "--sha256", "0" * 64, "--file", FILE]
        )
        assert code == 1
        [line] = [x for x in capfd.readouterr().err.splitlines() if x.startswith("error:")]
        return line

    assert "cannot fetch models:/no-such-model/1 from MLflow" in error_line(
        "models:/no-such-model/1"
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert "MLFLOW_TRACKING_URI is not set" in error_line(registered[0])
