"""The artifact contract (docs/artifact-contract.md): layout, metadata, digest, version, summary,
and the atomic write."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest
from modelops_trainer import TrainingError, artifact, train
from sklearn.datasets import load_iris

Spec = dict[str, Any]
METADATA_KEYS = {
    "formatVersion",
    "name",
    "namespace",
    "version",
    "task",
    "estimator",
    "hyperparameters",
    "features",
    "target",
    "metrics",
    "dataFingerprint",
    "libraryVersions",
    "createdAt",
    "modelFile",
    "sha256",
    "compiled",
    "trainingSpec",
    "background",
    "importance",
}
SUMMARY_KEYS = {
    "name",
    "namespace",
    "version",
    "sha256",
    "compiledSha256",
    "metadataSha256",
    "metrics",
    "artifactPath",
    "trainedAt",
}
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_the_directory_and_metadata_follow_the_contract(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    spec = iris_spec(qualityGate={"metric": "accuracy", "threshold": 0.9}, backoffLimit=1)
    summary = train(spec, output_root, "iris", "team-a")
    version = summary["version"]
    directory = output_root / "team-a" / "iris" / version
    assert sorted(p.name for p in output_root.rglob("*")) == sorted(
        ["team-a", "iris", version, "model.joblib", "model.npz", "metadata.json"]
    )
    metadata = json.loads((directory / "metadata.json").read_text())

    assert set(metadata) == METADATA_KEYS
    assert metadata["formatVersion"] == 1
    assert (metadata["name"], metadata["namespace"], metadata["version"]) == (
        "iris",
        "team-a",
        version,
    )
    assert metadata["modelFile"] == "model.joblib"
    assert (
        metadata["sha256"] == hashlib.sha256((directory / "model.joblib").read_bytes()).hexdigest()
    )
    assert metadata["compiled"] == {
        "file": "model.npz",
        "sha256": hashlib.sha256((directory / "model.npz").read_bytes()).hexdigest(),
        "format": "modelops-compiled",
        "formatVersion": 2,
    }
    assert metadata["trainingSpec"] == spec
    assert metadata["estimator"] == "RandomForestClassifier"
    assert metadata["dataFingerprint"].startswith("sha256:")
    assert set(metadata["libraryVersions"]) == {"python", "scikit-learn", "joblib", "numpy"}
    assert metadata["createdAt"] == summary["trainedAt"]
    assert re.fullmatch(TIMESTAMP, metadata["createdAt"])

    # The model takes the feature columns in `features` order, as a plain 2-D array, and its
    # classes_ order is the metadata's.
    model = joblib.load(directory / "model.joblib")
    iris = load_iris()
    assert [f["name"] for f in metadata["features"]] == list(iris.feature_names)
    assert [str(c) for c in model.classes_] == metadata["target"]["classes"]
    assert list(model.predict(iris.data[:1])) == ["setosa"]


def test_a_model_with_no_compiled_form_has_only_its_joblib_file(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    spec = iris_spec(estimator="KNeighborsClassifier", hyperparameters={})
    summary = train(spec, output_root, "iris")
    directory = Path(summary["artifactPath"])

    assert sorted(p.name for p in directory.iterdir()) == ["metadata.json", "model.joblib"]
    assert "compiled" not in json.loads((directory / "metadata.json").read_text())
    assert "compiledSha256" not in summary


def test_the_summary_is_the_metadata_in_brief(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    summary = train(iris_spec(), output_root, "iris")
    directory = Path(summary["artifactPath"])
    metadata = json.loads((directory / "metadata.json").read_text())

    assert set(summary) == SUMMARY_KEYS
    assert directory.is_absolute()
    assert directory == (output_root / "default" / "iris" / summary["version"]).absolute()
    for key in ("name", "namespace", "version", "sha256", "metrics"):
        assert summary[key] == metadata[key]
    assert summary["compiledSha256"] == metadata["compiled"]["sha256"]
    content = (directory / "metadata.json").read_bytes()
    assert summary["metadataSha256"] == hashlib.sha256(content).hexdigest()
    # A Kubernetes termination message holds at most 4 KiB.
    assert len(json.dumps(summary).encode()) < 4096


def test_the_version_is_the_documented_digest(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    spec = iris_spec(qualityGate={"metric": "accuracy", "threshold": 0.5})
    summary = train(spec, output_root, "iris")
    metadata = json.loads((Path(summary["artifactPath"]) / "metadata.json").read_text())
    inputs = {
        key: spec[key]
        for key in ("dataset", "estimator", "hyperparameters", "testSize", "randomSeed")
    }
    canonical = json.dumps(
        {"training": inputs, "dataFingerprint": metadata["dataFingerprint"]},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert summary["version"] == "v" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def test_the_version_directory_is_readable_by_the_servers_group(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    directory = Path(train(iris_spec(), output_root, "iris")["artifactPath"])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755


def test_a_failed_write_leaves_nothing_behind(
    iris_spec: Callable[..., Spec], output_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dump_half_then_fail(model: Any, path: Path) -> None:
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifact.joblib, "dump", dump_half_then_fail)
    with pytest.raises(
        TrainingError, match=r"the artifact volume is full: .* MiB left; raise spec.storage.size"
    ):
        train(iris_spec(), output_root, "iris")
    assert not output_root.exists()


def test_an_unwritable_volume_is_named(iris_spec: Callable[..., Spec], tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.write_text("a file, not a directory")
    with pytest.raises(TrainingError, match="check that the artifact volume is mounted"):
        train(iris_spec(), volume, "iris")


def test_a_failed_write_keeps_other_versions(
    iris_spec: Callable[..., Spec], output_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Path(train(iris_spec(), output_root, "iris")["artifactPath"])
    monkeypatch.setattr(artifact, "sha256_file", lambda path: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        train(iris_spec(randomSeed=8), output_root, "iris")
    assert [p.name for p in first.parent.iterdir()] == [first.name]


def test_the_version_appears_whole_in_one_rename(
    iris_spec: Callable[..., Spec], output_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[Path, Path, list[str]]] = []
    real_rename = os.rename

    def watching_rename(source: Any, target: Any) -> None:
        assert not Path(target).exists()
        renames.append((Path(source), Path(target), sorted(os.listdir(source))))
        real_rename(source, target)

    monkeypatch.setattr(artifact.os, "rename", watching_rename)
    summary = train(iris_spec(), output_root, "iris")
    [(staging, target, contents)] = renames
    assert target == output_root / "default" / "iris" / summary["version"]
    # A hidden sibling, so listing the versions never shows a half-written one.
    assert staging.parent == target.parent
    assert staging.name.startswith(".")
    assert contents == ["metadata.json", "model.joblib", "model.npz"]


def recorded(summary: dict[str, Any]) -> artifact.Provenance:
    """What the operator passes the next run once status recorded `summary`."""
    return artifact.Provenance({summary["version"]: summary})


def test_an_existing_version_status_recorded_is_kept_and_reported(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    first = train(iris_spec(), output_root, "iris")
    model = Path(first["artifactPath"]) / "model.joblib"
    written = model.stat()
    again = train(iris_spec(), output_root, "iris", provenance=recorded(first))
    assert again == first
    assert (model.stat().st_ino, model.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_a_retried_pod_adopts_what_its_own_run_wrote(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    run = artifact.Provenance(run="8d3c5e0e-job-uid")
    first = train(iris_spec(), output_root, "iris", provenance=run)
    assert train(iris_spec(), output_root, "iris", provenance=run) == first


def test_a_version_planted_where_the_next_one_goes_is_replaced_not_adopted(
    iris_spec: Callable[..., Spec], output_root: Path, tmp_path: Path
) -> None:
    # Another tenant of a shared volume trains a model of their own and puts it, metadata and
    # all, where this model's next version goes (the path follows from spec and data), with
    # the class names swapped so that every answer is wrong while every digest checks out.
    honest = train(iris_spec(), tmp_path / "elsewhere", "iris")
    theirs = train(iris_spec(randomSeed=8), tmp_path / "attacker", "iris")
    planted = output_root / "default" / "iris" / honest["version"]
    shutil.copytree(theirs["artifactPath"], planted)
    metadata = json.loads((planted / "metadata.json").read_text())
    metadata["target"]["classes"].reverse()
    (planted / "metadata.json").write_text(json.dumps(metadata))

    summary = train(iris_spec(), output_root, "iris")

    assert summary["sha256"] != theirs["sha256"]
    assert summary["sha256"] == hashlib.sha256((planted / "model.joblib").read_bytes()).hexdigest()
    written = (planted / "metadata.json").read_bytes()
    assert summary["metadataSha256"] == hashlib.sha256(written).hexdigest()
    assert json.loads(written)["target"]["classes"] == ["setosa", "versicolor", "virginica"]


def test_a_damaged_version_is_written_again(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    first = train(iris_spec(), output_root, "iris")
    model = Path(first["artifactPath"]) / "model.joblib"
    model.write_bytes(b"not the model")
    again = train(iris_spec(), output_root, "iris", provenance=recorded(first))
    assert hashlib.sha256(model.read_bytes()).hexdigest() == again["sha256"]
    assert joblib.load(model).predict(load_iris().data[:1]).shape == (1,)


def test_a_version_written_by_something_else_meanwhile_fails_the_run(
    iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    first = train(iris_spec(), output_root, "iris")
    directory = Path(first["artifactPath"])
    metadata = json.loads((directory / "metadata.json").read_text())
    # As if another writer reached the rename after this run looked.
    with pytest.raises(TrainingError, match="written by something else while this run wrote it"):
        artifact.write(directory, object(), metadata | {"createdAt": "later"})
    assert sorted(p.name for p in directory.parent.iterdir()) == [directory.name]
    assert json.loads((directory / "metadata.json").read_text()) == metadata


@pytest.mark.parametrize(("name", "namespace"), [("../up", "default"), ("iris", "a/b"), ("", "x")])
def test_names_must_be_directory_names(
    name: str, namespace: str, iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    with pytest.raises(TrainingError, match="cannot be a directory name"):
        train(iris_spec(), output_root, name, namespace)
