"""`modelops-fetch`: downloads one version from S3-compatible object storage, or one model
file from a bucket, a URL or an MLflow registry (a model trained elsewhere, spec.model), into
a local directory, and checks the model file's digest before anything may load it.

The serving pod's init container runs it (the artifacts' own copy for each pod: any number of
replicas on any nodes); the server then reads the directory as it reads one on a volume, and
checks the digest again of the bytes it unpickles. The client is boto3's, configured by the
standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Exit status 0 when the
version is in place, 1 with one `error: ...` line on stderr and in the termination message
otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import yaml
from botocore.config import Config

from . import downloads
from .artifact import METADATA_FILE, read_metadata
from .errors import ArtifactError

KUBERNETES_TERMINATION_LOG = Path("/dev/termination-log")
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
# The limits of a download from an http(s) URL (modelops_server.downloads), each overridable
# through its environment variable.
MAX_BYTES_ENV = "MODELOPS_FETCH_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 << 30
DEADLINE_ENV = "MODELOPS_FETCH_DEADLINE_SECONDS"
DEFAULT_DEADLINE_SECONDS = 1800


@dataclass(frozen=True)
class _SettingsHint:
    """Which spec fields a failed download points the user to."""

    field: str
    missing: str


STORAGE_HINT = _SettingsHint(
    "spec.storage.s3",
    "the version was removed from the bucket, or spec.storage.s3 names another bucket or "
    "prefix than the one it was trained to",
)
MODEL_HINT = _SettingsHint("spec.model", "check spec.model.uri")

log = logging.getLogger("modelops_server.fetch")


def fetch(
    source: str,
    directory: Path,
    expected_sha256: str,
    model_file: str | None = None,
    compiled_sha256: str | None = None,
    metadata_sha256: str | None = None,
) -> None:
    """Into `directory`: the version at `source` (s3://bucket/key-prefix) whose model file has
    `expected_sha256`; or, with `model_file`, the one model file at `source` (s3://bucket/key,
    an http(s) URL or an MLflow models:/name/version: a model trained elsewhere), kept under
    that name. A version's compiled form (model.npz) comes too, checked against
    `compiled_sha256` when given, and its metadata.json against `metadata_sha256`. The
    directory appears whole or not at all."""
    parts = urlsplit(source)
    if model_file is None and (
        parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/")
    ):
        raise ArtifactError(f"{source!r} is not a version in object storage (s3://bucket/key)")
    if model_file is not None and (
        parts.scheme not in ("s3", "http", "https", "models") or Path(model_file).name != model_file
    ):
        raise ArtifactError(
            f"{source!r} is not a model file at s3://bucket/key or an http(s) URL, nor an MLflow "
            f"models:/name/version, or {model_file!r} is not a file name"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        if model_file is None:
            _fetch_version(
                staging,
                parts.netloc,
                parts.path.strip("/"),
                source,
                expected_sha256,
                compiled_sha256,
                metadata_sha256,
            )
        else:
            _fetch_file(source, staging / model_file)
            _check_digest(
                staging / model_file, source, expected_sha256, "the model spec.model.sha256 names"
            )
        staging.chmod(0o755)
        # A restarted pod keeps its volume: what an earlier run left is replaced.
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched %s into %s", source, directory)


def _fetch_version(
    staging: Path,
    bucket: str,
    prefix: str,
    source: str,
    model_sha256: str,
    compiled_sha256: str | None,
    metadata_sha256: str | None,
) -> None:
    """The metadata, the model file and its compiled form (each checked where its digest is
    known)."""
    client = _s3_client()
    _download(client, bucket, f"{prefix}/{METADATA_FILE}", staging / METADATA_FILE, STORAGE_HINT)
    metadata = read_metadata(staging, metadata_sha256)
    wanted: list[tuple[str, str | None]] = [(metadata.model_file, model_sha256)]
    if metadata.compiled is not None:
        wanted.append((metadata.compiled.file, compiled_sha256))
    for name, digest in wanted:
        if Path(name).name != name:
            raise ArtifactError(f"{name!r} in {METADATA_FILE} must name a file beside it")
        _download(client, bucket, f"{prefix}/{name}", staging / name, STORAGE_HINT)
        if digest is not None:
            _check_digest(staging / name, f"{source}/{name}", digest, "the model that was trained")


def _fetch_file(source: str, path: Path) -> None:
    parts = urlsplit(source)
    if parts.scheme == "models":
        _fetch_registered(source, path)
        return
    if parts.scheme == "s3":
        _download(_s3_client(), parts.netloc, parts.path.lstrip("/"), path, MODEL_HINT)
        return
    _fetch_url(source, path)


def _fetch_url(source: str, path: Path) -> None:
    """The file at an http(s) URL, within the fetch's limits and redirect rules."""
    try:
        limits = downloads.Limits.from_environment(
            MAX_BYTES_ENV, DEFAULT_MAX_BYTES, DEADLINE_ENV, DEFAULT_DEADLINE_SECONDS
        )
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    shown = _shown(source)
    try:
        with path.open("wb") as file:
            downloads.download(source, file, limits)
    except downloads.TooLarge:
        raise ArtifactError(
            f"{shown} is larger than {limits.max_bytes} bytes, the fetch's limit ({MAX_BYTES_ENV})"
        ) from None
    except downloads.TooSlow as exc:
        raise ArtifactError(
            f"downloading {shown} took longer than {limits.deadline_seconds:g} s, the fetch's "
            f"limit ({DEADLINE_ENV}), with {exc.received} bytes received; check spec.model.uri"
        ) from None
    except downloads.DownloadError as exc:
        # The server answered (a status, a redirect refused), or could not be reached at all.
        unreachable = " and that the server is reachable from the pod" if exc.status is None else ""
        raise ArtifactError(
            f"cannot read {shown}: {exc.reason}; check spec.model.uri{unreachable}"
        ) from None
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fetch_registered(source: str, path: Path) -> None:
    """A scikit-learn model version of an MLflow registry, through its tracking server (the
    standard MLFLOW_TRACKING_URI and credentials variables): the file its MLmodel names,
    kept as `path`. mlflow is imported only here: the server never needs it."""
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ArtifactError(
            f"{source} is in an MLflow registry, but MLFLOW_TRACKING_URI is not set: name the "
            "server in spec.mlflow.trackingUri"
        )
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        try:
            model = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=folder))
        except Exception as exc:
            # MLflow's own exceptions (no such model or version, refused), and requests'.
            problem = " ".join(str(exc).split())[:300]
            raise ArtifactError(
                f"cannot fetch {source} from MLflow at {tracking_uri}: {problem}; check "
                "spec.model.uri and spec.mlflow"
            ) from None
        pickled = _pickled_model(source, model)
        os.replace(pickled, path)


def _pickled_model(source: str, model: Path) -> Path:
    """The pickled estimator of the MLflow model in `model`, per its MLmodel file."""
    try:
        flavors = yaml.safe_load((model / "MLmodel").read_text()).get("flavors") or {}
    except (OSError, yaml.YAMLError, AttributeError) as exc:
        raise ArtifactError(f"{source} has no readable MLmodel file: {exc}") from None
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise ArtifactError(
            f"{source} is not a scikit-learn model: its MLmodel has the flavors "
            f"{', '.join(sorted(flavors)) or 'none'}, and this server serves sklearn's"
        )
    serialization = sklearn.get("serialization_format", "cloudpickle")
    if serialization not in ("skops", "pickle", "cloudpickle"):
        raise ArtifactError(
            f"{source} is saved as {serialization}; this server reads skops, pickle and cloudpickle"
        )
    pickled = model / str(sklearn.get("pickled_model", ""))
    if pickled.parent != model or not pickled.is_file():
        raise ArtifactError(f"{source}'s MLmodel names no model file beside it: {pickled.name!r}")
    return pickled


def _shown(source: str) -> str:
    """A URL as it may be logged: without credentials or query, which may carry a signature."""
    return downloads.shown(source)


def _check_digest(model: Path, where: str, expected_sha256: str, expected_model: str) -> None:
    actual = _sha256(model)
    if actual != expected_sha256.lower():
        raise ArtifactError(
            f"{_shown(where)} has sha256 {actual}, expected {expected_sha256}: the object is "
            f"not {expected_model}, so it is not served"
        )


def _s3_client() -> object:
    return boto3.session.Session().client("s3", config=CLIENT_CONFIG)


def _download(client: object, bucket: str, key: str, path: Path, settings: _SettingsHint) -> None:
    where = f"s3://{bucket}/{key}"
    try:
        client.download_file(bucket, key, str(path))  # type: ignore[attr-defined]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise ArtifactError(f"{where} does not exist: {settings.missing}") from None
        raise ArtifactError(
            f"cannot read {where}: {code} {error.get('Message', '')}".rstrip()
            + f"; check {settings.field} and its credentials Secret"
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise ArtifactError(
            f"cannot read {where}: no S3 credentials; name a Secret with AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY in {settings.field}.credentialsSecret"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ArtifactError(
            f"cannot read {where}: {exc}; check {settings.field}.endpoint (or the Secret's "
            "AWS_ENDPOINT_URL) and that the storage is reachable from the pod"
        ) from None


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelops-fetch",
        description="Download a model version from S3-compatible object storage and check "
        "its digest.",
    )
    parser.add_argument(
        "--from", dest="source", required=True, help="s3://bucket/key-prefix (see --file)"
    )
    parser.add_argument("--to", type=Path, required=True, help="the version directory to make")
    parser.add_argument("--sha256", required=True, help="the model file's expected digest")
    parser.add_argument(
        "--compiled-sha256", help="the compiled form's (model.npz) expected digest, if it has one"
    )
    parser.add_argument(
        "--metadata-sha256", help="the version's metadata.json's expected digest, where recorded"
    )
    parser.add_argument(
        "--file",
        dest="model_file",
        help="the source is this one model file (s3://bucket/key or an http(s) URL), not a "
        "version directory; it is kept under this name",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        fetch(
            arguments.source,
            arguments.to,
            arguments.sha256,
            arguments.model_file,
            arguments.compiled_sha256,
            arguments.metadata_sha256,
        )
    except ArtifactError as exc:
        line = "error: " + " ".join(str(exc).split())
        print(line, file=sys.stderr, flush=True)
        if KUBERNETES_TERMINATION_LOG.exists():
            KUBERNETES_TERMINATION_LOG.write_text(line + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
