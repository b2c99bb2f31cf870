"""`modelops-train --upload-root s3://...` against a real S3-compatible server (versitygw): the
version goes up whole, is never overwritten, is reused by a run of the same inputs, and the
versions no longer kept are removed; what goes wrong is said in words a person can act on."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from modelops_envtest.object_storage import ObjectStorage
from modelops_trainer import cli

Spec = dict[str, Any]
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(path))
    for variable in ("MODELOPS_TRAINING_SPEC", "MODELOPS_NAMESPACE", "MODELOPS_KEEP_VERSIONS"):
        monkeypatch.delenv(variable, raising=False)
    return path


@pytest.fixture
def run(
    s3: ObjectStorage,
    iris_spec: Callable[..., Spec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> Run:
    """The trainer as the Job runs it, the spec in its environment: `run(volume, *args,
    **spec_changes)` trains iris with `tmp_path/volume` as its volume; (status, stdout, stderr)."""

    def trainer(volume: str, *args: str, **spec_changes: Any) -> tuple[int, str, str]:
        monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(iris_spec(**spec_changes)))
        status = cli.main(["--output-root", str(tmp_path / volume), "--name", "iris", *args])
        out, err = capfd.readouterr()
        return status, out, err

    return trainer


def keys(bucket: str, prefix: str) -> list[str]:
    listing = boto3.session.Session().client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(entry["Key"] for entry in listing.get("Contents") or [])


def test_a_version_is_uploaded_whole_and_reported_by_its_s3_location(run: Run) -> None:
    status, out, err = run("a", "--upload-root", "s3://models/upload")
    assert status == 0, err
    summary = json.loads(out)
    version = summary["version"]
    assert summary["artifactPath"] == f"s3://models/upload/default/iris/{version}"
    prefix = f"upload/default/iris/{version}/"
    assert keys("models", prefix) == [
        prefix + "metadata.json",
        prefix + "model.joblib",
        prefix + "model.npz",
    ]
    client = boto3.session.Session().client("s3")
    model = client.get_object(Bucket="models", Key=prefix + "model.joblib")["Body"].read()
    assert hashlib.sha256(model).hexdigest() == summary["sha256"]


def test_a_run_of_the_same_inputs_reuses_the_uploaded_version(
    run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first = json.loads(run("a", "--upload-root", "s3://models/reuse")[1])
    # Another pod: its own empty volume.
    status, out, _ = run("b", "--upload-root", "s3://models/reuse")
    assert status == 0
    assert json.loads(out) == first
    assert "is already at s3://models/reuse" in caplog.text
    assert not (tmp_path / "b" / "default").exists(), "nothing was trained again"


def test_versions_no_longer_kept_are_removed_from_the_bucket(run: Run) -> None:
    versions: list[str] = []
    for seed in (1, 2, 3):
        status, out, err = run(
            str(seed),
            "--upload-root",
            "s3://models/prune",
            "--keep-versions",
            ",".join(versions[-1:]),
            randomSeed=seed,
        )
        assert status == 0, err
        versions.append(json.loads(out)["version"])
    remaining = {key.split("/")[3] for key in keys("models", "prune/default/iris/")}
    assert remaining == set(versions[1:])


@pytest.mark.parametrize(
    ("root", "environment", "words"),
    [
        ("s3://no-such-bucket/x", {}, "NoSuchBucket"),
        ("s3://models/x", {"AWS_SECRET_ACCESS_KEY": "wrong"}, "AWS_SECRET_ACCESS_KEY"),
        ("s3://models/x", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "spec.storage.s3.endpoint"),
        ("models/x", {}, "s3://<bucket>/<prefix>"),
    ],
)
def test_what_goes_wrong_with_the_storage_is_one_actionable_error(
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    termination_log: Path,
    root: str,
    environment: dict[str, str],
    words: str,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    status, out, err = run("a", "--upload-root", root)
    assert (status, out) == (1, "")
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert words in line
    assert termination_log.read_text() == line + "\n"
