"""Versions kept in S3-compatible object storage (docs/artifact-contract.md): the same files as on
the volume, under s3://<bucket>/<prefix>/<namespace>/<name>/<version>/.

The client is boto3's, configured the standard way (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, ...). A version's files are written only where nothing is
(conditional writes: a version is never overwritten while serving pods may be downloading it,
nor is someone else's write taken for this run's), and its metadata.json goes up last: a reader
that finds the metadata finds the whole version.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from .artifact import METADATA_FILE, VERSION_NAME, Kept
from .errors import TrainingError

log = logging.getLogger(__name__)

# The standard retry mode backs off on throttling and 5xx, as the AWS CLI does.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


class ObjectStore:
    """The versions under one s3://bucket/prefix root."""

    def __init__(self, root_uri: str) -> None:
        parts = urlsplit(root_uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise TrainingError(
                f"{root_uri!r} is not an object storage location: write s3://<bucket>/<prefix>"
            )
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self._client: Any = None

    def uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key(relative)}"

    def kept(self, relative: str) -> Kept | None:
        """The version at `relative` (namespace/name/version), or None when its metadata is
        not there or not readable."""
        key = f"{self._key(relative)}/{METADATA_FILE}"
        try:
            body = self._call("read", key, "get_object", Bucket=self.bucket, Key=key)
        except _NotThere:
            return None
        content = body["Body"].read()
        try:
            metadata: dict[str, Any] = json.loads(content)
        except ValueError:
            return None
        return Kept(metadata, hashlib.sha256(content).hexdigest())

    def upload(self, directory: Path, relative: str) -> str:
        """Uploads the version in `directory` to `relative`, each file only where no object
        is; its location."""
        metadata_file = directory / METADATA_FILE
        files = [path for path in sorted(directory.iterdir()) if path != metadata_file]
        for path in [*files, metadata_file]:
            key = f"{self._key(relative)}/{path.name}"
            with path.open("rb") as body:
                try:
                    self._call(
                        "write", key, "put_object", Bucket=self.bucket, Key=key, Body=body,
                        IfNoneMatch="*",
                    )  # fmt: skip
                except _AlreadyThere:
                    raise TrainingError(
                        f"s3://{self.bucket}/{key} was written by someone else while this run "
                        "uploaded the version: it is not adopted, and not overwritten; make "
                        "sure no one else writes under this model's prefix (give each "
                        "namespace a prefix and credentials of its own), and run again"
                    ) from None
        log.info("uploaded %s", self.uri(relative))
        return self.uri(relative)

    def remove(self, relative: str) -> None:
        """Removes what is under the version `relative`."""
        self._delete_under(f"{self._key(relative)}/")

    def prune(self, model_relative: str, keep: Collection[str]) -> list[str]:
        """Removes the model's versions that are not in `keep`; the versions removed. Like the
        volume's pruning it never fails a run: what cannot be removed is logged."""
        removed = []
        for version in self._versions(model_relative):
            if version in keep:
                continue
            prefix = f"{self._key(model_relative)}/{version}/"
            try:
                self._delete_under(prefix)
            except TrainingError as exc:
                log.warning("cannot remove the old version %s: %s", version, exc)
                continue
            removed.append(version)
        if removed:
            log.info("removed versions no longer kept: %s", ", ".join(removed))
        return removed

    def _versions(self, model_relative: str) -> Iterator[str]:
        prefix = f"{self._key(model_relative)}/"
        for page in self._pages(prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes") or []:
                version = common["Prefix"][len(prefix) :].rstrip("/")
                if VERSION_NAME.fullmatch(version):
                    yield version

    def _delete_under(self, prefix: str) -> None:
        for page in self._pages(prefix):
            for entry in page.get("Contents") or []:
                self._call(
                    "delete", entry["Key"], "delete_object", Bucket=self.bucket, Key=entry["Key"]
                )

    def _pages(self, prefix: str, **listing: str) -> list[dict[str, Any]]:
        """Every page of the listing under `prefix`."""
        return list(
            self._call("list", prefix, "get_paginator", operation_name="list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, **listing
            )
        )

    def _key(self, relative: str) -> str:
        return "/".join(part for part in (self.prefix, relative.strip("/")) if part)

    def _call(self, action: str, key: str, method: str, **arguments: Any) -> Any:
        """The client's `method`, its failures in words a person can act on."""
        if self._client is None:
            # A session of its own: boto3's default one keeps the credentials it first found.
            self._client = boto3.session.Session().client("s3", config=CLIENT_CONFIG)
        try:
            return getattr(self._client, method)(**arguments)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise _NotThere from None
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise _AlreadyThere from None
            raise TrainingError(
                f"cannot {action} s3://{self.bucket}/{key}: {_problem(exc)}"
            ) from None


def _code(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _problem(exc: Exception) -> str:
    """What went wrong with a request, and what to change."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = _code(exc)
        message = str(exc.response.get("Error", {}).get("Message", ""))
        hint = _HINTS.get(code, "check spec.storage.s3 and its credentials Secret")
        return f"{code} {message}".strip() + f"; {hint}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return (
            "no S3 credentials; name a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "in spec.storage.s3.credentialsSecret"
        )
    return (
        f"{exc}; check spec.storage.s3.endpoint (or the Secret's AWS_ENDPOINT_URL) and that the "
        "storage is reachable from the pod"
    )


class _NotThere(Exception):
    pass


class _AlreadyThere(Exception):
    pass


_HINTS = {
    "NoSuchBucket": "create the bucket, or fix spec.storage.s3.bucket",
    "AccessDenied": "give the credentials in spec.storage.s3.credentialsSecret access to it",
    "InvalidAccessKeyId": "fix AWS_ACCESS_KEY_ID in spec.storage.s3.credentialsSecret",
    "SignatureDoesNotMatch": "fix AWS_SECRET_ACCESS_KEY in spec.storage.s3.credentialsSecret",
}
