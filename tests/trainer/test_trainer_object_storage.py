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
from modelops_trainer import cli, training
from modelops_trainer.errors import TrainingError
from modelops_trainer.object_storage import ObjectStore

Spec = dict[str, Any]
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(path))
    for variable in (
        "MODELOPS_TRAINING_SPEC",
        "MODELOPS_NAMESPACE",
        "MODELOPS_KEEP_VERSIONS",
        "MODELOPS_RECORDED_VERSIONS",
        "MODELOPS_RUN_ID",
    ):
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


def test_a_run_of_the_same_inputs_reuses_the_uploaded_version_status_recorded(
    run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)
    first = json.loads(run("a", "--upload-root", "s3://models/reuse")[1])
    monkeypatch.setenv("MODELOPS_RECORDED_VERSIONS", json.dumps({first["version"]: first}))
    # Another pod: its own empty volume.
    status, out, _ = run("b", "--upload-root", "s3://models/reuse")
    assert status == 0
    assert json.loads(out) == first
    assert "is already at s3://models/reuse" in caplog.text
    assert not (tmp_path / "b" / "default").exists(), "nothing was trained again"


def test_a_version_planted_in_the_bucket_is_replaced_not_adopted(run: Run) -> None:
    # Another tenant of the bucket trains their own model and copies it, metadata and all,
    # where this model's next version will go: the path is predictable from spec and data.
    planted = json.loads(
        run("attacker", "--upload-root", "s3://models/planted-src", randomSeed=8)[1]
    )
    victim_version = json.loads(run("probe", "--upload-root", "s3://models/probe")[1])["version"]
    client = boto3.session.Session().client("s3")
    source = f"planted-src/default/iris/{planted['version']}/"
    target = f"victim/default/iris/{victim_version}/"
    for key in keys("models", source):
        client.copy_object(
            Bucket="models", Key=target + key[len(source) :],
            CopySource={"Bucket": "models", "Key": key},
        )  # fmt: skip

    status, out, err = run("victim", "--upload-root", "s3://models/victim")

    assert status == 0, err
    summary = json.loads(out)
    assert summary["version"] == victim_version
    assert summary["sha256"] != planted["sha256"], "the planted model was reported as trained"
    model = client.get_object(Bucket="models", Key=target + "model.joblib")["Body"].read()
    metadata = client.get_object(Bucket="models", Key=target + "metadata.json")["Body"].read()
    assert hashlib.sha256(model).hexdigest() == summary["sha256"]
    assert hashlib.sha256(metadata).hexdigest() == summary["metadataSha256"]
    assert json.loads(metadata)["version"] == victim_version


def test_an_upload_never_overwrites_what_someone_else_wrote_meanwhile(
    s3: ObjectStorage, tmp_path: Path, iris_spec: Callable[..., Spec]
) -> None:
    class Racing(ObjectStore):
        """Someone writes the model file after the run looked and before it uploads."""

        def upload(self, directory: Path, relative: str) -> str:
            key = f"{self._key(relative)}/model.joblib"
            boto3.session.Session().client("s3").put_object(Bucket=self.bucket, Key=key, Body=b"x")
            return super().upload(directory, relative)

    with pytest.raises(TrainingError, match="written by someone else while this run uploaded"):
        training.train(iris_spec(), tmp_path, "iris", store=Racing("s3://models/race"))
    [key] = keys("models", "race/")
    assert key.endswith("/model.joblib")
    body = boto3.session.Session().client("s3").get_object(Bucket="models", Key=key)["Body"]
    assert body.read() == b"x", "someone else's object was overwritten"


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
