"""Loading: the digest is checked before unpickling, readiness follows a successful load only,
liveness never depends on the model, and the log says why a model is not served."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Artifact, build_app
from fastapi.testclient import TestClient
from modelops_server.settings import Settings

SETOSA = [5.1, 3.5, 1.4, 0.2]


class _TouchOnUnpickle:
    """A pickle that runs code when loaded: creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def _not_ready(settings: Settings, caplog: pytest.LogCaptureFixture) -> tuple[TestClient, str]:
    with caplog.at_level(logging.ERROR, logger="modelops_server"):
        app, _ = build_app(settings)
    client = TestClient(app)
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/healthz").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert client.get("/readyz").status_code == 503
    predict = client.post("/predict", json={"instances": [SETOSA]})
    assert predict.status_code == 503
    assert predict.json()["error"] == ready.json()["error"]
    return client, caplog.text


def test_a_model_file_that_is_not_the_trained_one_is_never_unpickled(
    iris_forest: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    _without_compiled_form(artifact.directory)
    marker = tmp_path / "code-ran"
    (artifact.directory / "model.joblib").write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))

    client, log = _not_ready(Settings(model_dir=artifact.directory), caplog)

    assert not marker.exists()
    assert "has sha256" in log and f"expected {iris_forest.metadata['sha256']}" in log
    assert "is not loaded" in client.get("/v2/health/ready").json()["error"]
    # The control: the same file with a matching digest would have run the code.
    pickle.loads((artifact.directory / "model.joblib").read_bytes())
    assert marker.exists()


def test_the_digest_from_the_environment_wins_over_the_metadata(
    iris_forest: Artifact, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_MODEL_DIR", str(iris_forest.directory))
    monkeypatch.setenv("MODELOPS_MODEL_SHA256", "0" * 64)

    _, log = _not_ready(Settings(), caplog)

    assert f"expected {'0' * 64}" in log


def test_another_version_than_the_one_to_serve_is_refused(
    iris_forest: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(model_dir=iris_forest.directory, model_version="v123456789abc")

    _, log = _not_ready(settings, caplog)

    assert f"holds version {iris_forest.version}, but version v123456789abc is to be served" in log


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "metadata.json").unlink(), "does not exist"),
        (lambda d: (d / "metadata.json").write_text("{"), "cannot be read as JSON"),
        (lambda d: (d / "model.npz").unlink(), "model.npz cannot be read"),
        (
            lambda d: _without_compiled_form(d) or (d / "model.joblib").unlink(),
            "model.joblib cannot be read",
        ),
        (lambda d: _rewrite_metadata(d, formatVersion=2), "formatVersion 2"),
        # (Without the training rows kept for explanations, which list four values each.)
        (lambda d: _rewrite_metadata(d, features=[], background=None), "lists 0"),
        (
            lambda d: (
                _without_compiled_form(d) or _rewrite_metadata(d, features=[], background=None)
            ),
            "lists 0",
        ),
    ],
    ids=[
        "no metadata",
        "bad metadata",
        "no compiled file",
        "no model file",
        "newer format",
        "feature mismatch",
        "feature mismatch, unpickled",
    ],
)
def test_a_broken_artifact_leaves_the_server_up_and_not_ready(
    iris_forest: Artifact,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], object],
    message: str,
) -> None:
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    damage(artifact.directory)

    client, log = _not_ready(Settings(model_dir=artifact.directory), caplog)

    assert message in log
    assert message in client.get("/v2/health/ready").json()["error"]


def _rewrite_metadata(directory: Path, **changes: object) -> None:
    path = directory / "metadata.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def _without_compiled_form(directory: Path) -> None:
    """The artifact as the trainer writes it for a model with no compiled form."""
    (directory / "model.npz").unlink()
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["compiled"]
    path.write_text(json.dumps(metadata))


def test_an_object_array_in_the_compiled_file_is_refused_not_unpickled(
    iris_forest: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    marker = tmp_path / "code-ran"
    crafted = io.BytesIO()
    np.savez(crafted, allow_pickle=True, format=np.array([_TouchOnUnpickle(marker)], dtype=object))
    (artifact.directory / "model.npz").write_bytes(crafted.getvalue())
    digest = hashlib.sha256(crafted.getvalue()).hexdigest()
    compiled = iris_forest.metadata["compiled"] | {"sha256": digest}
    _rewrite_metadata(artifact.directory, compiled=compiled)

    client, log = _not_ready(Settings(model_dir=artifact.directory), caplog)

    assert not marker.exists()
    assert "model.npz cannot be served: it is not a readable .npz of plain arrays" in log
    assert "allow_pickle=False" in client.get("/v2/health/ready").json()["error"]


def _children_outside(arrays: dict[str, np.ndarray]) -> None:
    arrays["trees.children"][3] = len(arrays["trees.children"]) + 8


def _root_outside(arrays: dict[str, np.ndarray]) -> None:
    arrays["trees.roots"][-1] = -2


def _feature_beyond(arrays: dict[str, np.ndarray]) -> None:
    arrays["trees.feature"][0] = 9


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_children_outside, "its trees do not fit together: a child is outside the trees"),
        (_root_outside, "its trees do not fit together: a root is outside the trees"),
        (_feature_beyond, "its averaged-trees do not take the 4 features it lists"),
    ],
    ids=["child", "root", "feature"],
)
def test_compiled_trees_that_point_outside_their_arrays_are_refused_at_load(
    iris_forest: Artifact,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    corrupt: Callable[[dict[str, np.ndarray]], None],
    message: str,
) -> None:
    """The trees are walked in C (_kernels.c): an index a file got wrong (or was crafted with,
    digest and all) is refused once, at load, never read past at a prediction."""
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    with np.load(artifact.directory / "model.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    corrupt(arrays)
    crafted = io.BytesIO()
    np.savez(crafted, **arrays)
    (artifact.directory / "model.npz").write_bytes(crafted.getvalue())
    digest = hashlib.sha256(crafted.getvalue()).hexdigest()
    _rewrite_metadata(
        artifact.directory, compiled=iris_forest.metadata["compiled"] | {"sha256": digest}
    )

    _, log = _not_ready(Settings(model_dir=artifact.directory), caplog)

    assert f"model.npz cannot be served: {message}" in log


def test_a_compiled_file_that_is_not_the_trained_one_is_not_served(
    iris_forest: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    settings = Settings(
        model_dir=artifact.directory,
        model_sha256=iris_forest.metadata["sha256"],
        compiled_sha256="0" * 64,
    )

    _, log = _not_ready(settings, caplog)

    assert "model.npz has sha256" in log and f"expected {'0' * 64}" in log


def test_metadata_changed_since_training_is_not_served(
    iris_forest: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Swapped class names flip every answer while the model files' digests still check out.
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    recorded = hashlib.sha256((artifact.directory / "metadata.json").read_bytes()).hexdigest()
    metadata = json.loads((artifact.directory / "metadata.json").read_text())
    metadata["target"]["classes"].reverse()
    (artifact.directory / "metadata.json").write_text(json.dumps(metadata))
    settings = Settings(
        model_dir=artifact.directory,
        model_sha256=iris_forest.metadata["sha256"],
        compiled_sha256=iris_forest.metadata["compiled"]["sha256"],
        metadata_sha256=recorded,
    )

    _, log = _not_ready(settings, caplog)

    assert f"not the {recorded} recorded when the version was trained" in log


def test_metadata_as_trained_is_served(iris_forest: Artifact) -> None:
    recorded = hashlib.sha256((iris_forest.directory / "metadata.json").read_bytes()).hexdigest()
    settings = Settings(
        model_dir=iris_forest.directory,
        model_sha256=iris_forest.metadata["sha256"],
        metadata_sha256=recorded,
    )
    app, _ = build_app(settings)
    assert TestClient(app).post("/predict", json={"instances": [SETOSA]}).status_code == 200


def test_without_a_trusted_digest_of_the_compiled_file_the_verified_model_is_unpickled(
    iris_forest: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        model_dir=iris_forest.directory, model_sha256=iris_forest.metadata["sha256"]
    )
    with caplog.at_level(logging.INFO, logger="modelops_server"):
        app, _ = build_app(settings)

    assert "MODELOPS_COMPILED_SHA256 is not set" in caplog.text
    assert "(model.joblib); runtime compiled" in caplog.text
    assert TestClient(app).post("/predict", json={"instances": [SETOSA]}).status_code == 200


def test_the_environment_names_the_model(
    iris_forest: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable, value in {
        "MODELOPS_MODEL_DIR": str(iris_forest.directory),
        "MODELOPS_MODEL_NAME": "flowers",
        "MODELOPS_MODEL_VERSION": iris_forest.version,
        "MODELOPS_MODEL_SHA256": iris_forest.metadata["sha256"].upper(),
    }.items():
        monkeypatch.setenv(variable, value)

    app, _ = build_app(Settings())
    client = TestClient(app)

    assert client.get("/v2/models/flowers/ready").status_code == 200
    body = client.post("/predict", json={"instances": [SETOSA]}).json()
    assert (body["model_name"], body["model_version"]) == ("flowers", iris_forest.version)
    assert client.get(f"/v2/models/{iris_forest.name}").status_code == 404


def test_the_app_loads_the_model_after_startup(iris_forest: Artifact) -> None:
    app, _ = build_app(Settings(model_dir=iris_forest.directory), load_on_startup=True)

    with TestClient(app) as client:
        assert client.get("/v2/health/live").status_code == 200
        deadline = time.monotonic() + 30
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.05)
        assert client.post("/predict", json={"instances": [SETOSA]}).status_code == 200


def test_the_bytes_checked_are_the_bytes_unpickled(
    iris_forest: Artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model file that changes between the check and the use (here a pipe that hands the
    trained model to its first reader and a code-running pickle to the next) must not run."""
    artifact = iris_forest.copy_to(tmp_path / "artifact")
    model_file = artifact.directory / "model.joblib"
    trained_bytes = model_file.read_bytes()
    marker = tmp_path / "code-ran"
    model_file.unlink()
    os.mkfifo(model_file)

    def hand_out() -> None:
        for content in (trained_bytes, pickle.dumps(_TouchOnUnpickle(marker))):
            with model_file.open("wb") as pipe:
                pipe.write(content)
            # Let the reader see the end of this content before the next writer opens.
            time.sleep(1)

    feeder = threading.Thread(target=hand_out, daemon=True)
    feeder.start()
    settings = Settings(model_dir=artifact.directory, model_sha256=iris_forest.metadata["sha256"])
    try:
        app, _ = build_app(settings)
        body = TestClient(app).post("/predict", json={"instances": [SETOSA]})
    finally:
        # Release the feeder if the server read the pipe only once.
        os.close(os.open(model_file, os.O_RDONLY | os.O_NONBLOCK))
        feeder.join(timeout=5)
    assert not marker.exists()
    assert body.status_code == 200, body.text


def test_a_model_without_an_expected_digest_is_served_as_unverified(
    iris_forest: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="modelops_server"):
        build_app(Settings(model_dir=iris_forest.directory))
    assert "UNVERIFIED MODEL" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modelops_server"):
        build_app(
            Settings(model_dir=iris_forest.directory, model_sha256=iris_forest.metadata["sha256"])
        )
    assert "UNVERIFIED" not in caplog.text
