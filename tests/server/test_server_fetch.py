"""`modelops-fetch` against a real S3-compatible server (versitygw): a version the trainer
uploaded arrives whole (its compiled form too) and loads; a digest that does not match leaves nothing behind; each
failure is one `error:` line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelops_envtest.object_storage import ObjectStorage
from modelops_server import fetch
from modelops_server.artifact import load_verified, load_verified_compiled, read_metadata
from modelops_server.errors import ArtifactError
from modelops_trainer.object_storage import ObjectStore
from modelops_trainer.training import train

IRIS = {
    "dataset": {"builtin": "iris"},
    "estimator": "LogisticRegression",
    "hyperparameters": {"max_iter": 200},
}


@pytest.fixture
def uploaded(s3: ObjectStorage, tmp_path: Path) -> dict[str, Any]:
    """The trainer's summary of a version it uploaded to s3://models/fetch."""
    return train(IRIS, tmp_path / "staging", "iris", "ns", ObjectStore("s3://models/fetch"))


def test_a_fetched_version_loads_as_one_on_a_volume(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "models" / uploaded["version"]
    fetch.fetch(
        uploaded["artifactPath"], directory, uploaded["sha256"], None, uploaded["compiledSha256"]
    )
    metadata = read_metadata(directory)
    model = load_verified(directory, metadata, uploaded["sha256"])
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2]])) == ["setosa"]
    compiled = load_verified_compiled(directory, metadata, uploaded["compiledSha256"])
    assert compiled.predict(np.array([[5.1, 3.5, 1.4, 0.2]])).outputs.tolist() == [0]
    assert sorted(path.name for path in directory.parent.iterdir()) == [uploaded["version"]]


def test_a_digest_that_does_not_match_leaves_nothing_behind(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match="is not the model that was trained"):
        fetch.fetch(uploaded["artifactPath"], tmp_path / "models" / "v1", "0" * 64)
    assert list((tmp_path / "models").iterdir()) == []


def test_a_compiled_form_that_is_not_the_trained_one_leaves_nothing_behind(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"model\.npz has sha256"):
        fetch.fetch(
            uploaded["artifactPath"], tmp_path / "models" / "v1", uploaded["sha256"], None, "0" * 64
        )
    assert list((tmp_path / "models").iterdir()) == []


def test_a_restarted_fetch_replaces_what_an_earlier_one_left(
    uploaded: dict[str, Any], tmp_path: Path
) -> None:
    directory = tmp_path / "models" / uploaded["version"]
    directory.mkdir(parents=True)
    (directory / "partial").write_text("from a run that died")
    fetch.fetch(uploaded["artifactPath"], directory, uploaded["sha256"])
    assert sorted(path.name for path in directory.iterdir()) == [
        "metadata.json",
        "model.joblib",
        "model.npz",
    ]


def test_each_failure_is_one_error_line_and_exit_1(
    uploaded: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = uploaded["artifactPath"].rsplit("/", 1)[0] + "/v000000000000"
    status = fetch.main(["--from", missing, "--to", str(tmp_path / "v"), "--sha256", "0" * 64])
    _, err = capfd.readouterr()
    assert status == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert "does not exist" in line and "spec.storage.s3" in line
