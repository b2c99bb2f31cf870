"""`modelops-fetch`: downloads one version from S3-compatible object storage into a local
directory, and checks the model file's digest before anything may load it.

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
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from .artifact import METADATA_FILE, read_metadata
from .errors import ArtifactError

KUBERNETES_TERMINATION_LOG = Path("/dev/termination-log")
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})

log = logging.getLogger("modelops_server.fetch")


def fetch(source: str, directory: Path, expected_sha256: str) -> None:
    """The version at `source` (s3://bucket/key-prefix), into `directory`, whose model file has
    `expected_sha256`. The directory appears whole or not at all."""
    parts = urlsplit(source)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ArtifactError(f"{source!r} is not a version in object storage (s3://bucket/key)")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    client = boto3.session.Session().client("s3", config=CLIENT_CONFIG)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        _fetch_into(staging, client, bucket, prefix, source, expected_sha256)
        # A restarted pod keeps its volume: what an earlier run left is replaced.
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched %s into %s", source, directory)


def _fetch_into(
    staging: Path, client: object, bucket: str, prefix: str, source: str, expected_sha256: str
) -> None:
    _download(client, bucket, f"{prefix}/{METADATA_FILE}", staging / METADATA_FILE)
    metadata = read_metadata(staging)
    if Path(metadata.model_file).name != metadata.model_file:
        raise ArtifactError(f"modelFile {metadata.model_file!r} must name a file beside it")
    model = staging / metadata.model_file
    _download(client, bucket, f"{prefix}/{metadata.model_file}", model)
    actual = _sha256(model)
    if actual != expected_sha256.lower():
        raise ArtifactError(
            f"{source}/{metadata.model_file} has sha256 {actual}, expected {expected_sha256}: "
            "the object is not the model that was trained, so it is not served"
        )
    staging.chmod(0o755)


def _download(client: object, bucket: str, key: str, path: Path) -> None:
    where = f"s3://{bucket}/{key}"
    try:
        client.download_file(bucket, key, str(path))  # type: ignore[attr-defined]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise ArtifactError(
                f"{where} does not exist: the version was removed from the bucket, or "
                "spec.storage.s3 names another bucket or prefix than the one it was trained to"
            ) from None
        raise ArtifactError(
            f"cannot read {where}: {code} {error.get('Message', '')}".rstrip()
            + "; check spec.storage.s3 and its credentials Secret"
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise ArtifactError(
            f"cannot read {where}: no S3 credentials; name a Secret with AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in spec.storage.s3.credentialsSecret"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ArtifactError(
            f"cannot read {where}: {exc}; check spec.storage.s3.endpoint (or the Secret's "
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
    parser.add_argument("--from", dest="source", required=True, help="s3://bucket/key-prefix")
    parser.add_argument("--to", type=Path, required=True, help="the version directory to make")
    parser.add_argument("--sha256", required=True, help="the model file's expected digest")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        fetch(arguments.source, arguments.to, arguments.sha256)
    except ArtifactError as exc:
        line = "error: " + " ".join(str(exc).split())
        print(line, file=sys.stderr, flush=True)
        if KUBERNETES_TERMINATION_LOG.exists():
            KUBERNETES_TERMINATION_LOG.write_text(line + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
