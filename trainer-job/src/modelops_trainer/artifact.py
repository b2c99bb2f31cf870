"""The artifact directory of docs/artifact-contract.md: its version, digest, metadata and summary,
and the atomic write that makes a reader see a whole version or none."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from modelops_server import compiled
from modelops_server.compiling import NotCompilable, compile_model

from .errors import TrainingError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.joblib"
# The compiled form of a tree ensemble or linear model: numbers only, served without unpickling.
COMPILED_FILE = "model.npz"
METADATA_FILE = "metadata.json"
# A version directory's name (version_of); nothing else under a model's directory is removed.
VERSION_NAME = re.compile(r"v[0-9a-f]{12}")


def version_of(model_inputs: dict[str, Any], data_fingerprint: str) -> str:
    canonical = json.dumps(
        {"training": model_inputs, "dataFingerprint": data_fingerprint},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "v" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def library_versions() -> dict[str, str]:
    # What unpickling the model needs to match.
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": np.__version__,
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Provenance:
    """What may vouch for a version found already in place, so that it is adopted rather
    than written again: the digests the model's status recorded for its versions
    (MODELOPS_RECORDED_VERSIONS), or this run's own id (its Job's uid: a retried pod finding
    what an earlier pod of the run wrote). Anything else in place (another tenant's files at
    a predictable path of a shared bucket or volume, a run whose result was never recorded)
    is replaced, never reported as this model's."""

    recorded: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    run: str = ""

    def vouches_for(self, metadata: Mapping[str, Any], metadata_sha256: str) -> bool:
        if self.run and metadata.get("run") == self.run:
            return True
        record = self.recorded.get(str(metadata.get("version")))
        return (
            record is not None
            and record.get("sha256") == metadata.get("sha256")
            and record.get("metadataSha256", metadata_sha256) == metadata_sha256
        )


# A run outside a pod (by hand, in tests): nothing in place is adopted.
NOTHING_RECORDED = Provenance()


@dataclass(frozen=True)
class Kept:
    """A version in place: its metadata, and the digest of its metadata.json."""

    metadata: dict[str, Any]
    metadata_sha256: str


def adoptable(directory: Path, provenance: Provenance) -> Kept | None:
    """The version at `directory` when it is whole and `provenance` vouches for it; else
    None, with whatever was there removed so that this run writes its own."""
    if not directory.exists():
        return None
    kept = _intact(directory)
    if kept is not None and provenance.vouches_for(kept.metadata, kept.metadata_sha256):
        return kept
    log.warning(
        "%s is in place but %s: not adopted; this run writes its own",
        directory,
        "this model did not record writing it" if kept else "it is not whole",
    )
    shutil.rmtree(directory)
    return None


def _intact(directory: Path) -> Kept | None:
    """The version at `directory` when its files match its metadata's digests."""
    try:
        content = (directory / METADATA_FILE).read_bytes()
        metadata: dict[str, Any] = json.loads(content)
        files = [(metadata["modelFile"], metadata["sha256"])]
        if "compiled" in metadata:
            files.append((metadata["compiled"]["file"], metadata["compiled"]["sha256"]))
        if all(sha256_file(directory / name) == digest for name, digest in files):
            return Kept(metadata, hashlib.sha256(content).hexdigest())
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write(directory: Path, model: Any, metadata: dict[str, Any]) -> Kept:
    """Writes the model and its metadata (completed with the file name and digest) as the
    version `directory`, and returns what was written.

    Everything goes into a hidden temporary sibling that is renamed into place at the end, so
    a reader sees a whole version or none, and a failure leaves nothing behind. Should
    something else get there first, the run fails: what it wrote is never adopted.
    """
    parent = directory.parent
    created = [path for path in (parent, *parent.parents) if not path.exists()]
    staging: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=parent))
        complete = _stage(staging, model, metadata)
        os.rename(staging, directory)
    except BaseException as exc:
        _discard(staging, created)
        if not isinstance(exc, OSError):
            raise
        if directory.is_dir():
            raise TrainingError(
                f"{directory} was written by something else while this run wrote it: it is "
                "not adopted; make sure one run at a time writes this model's versions, and "
                "run again"
            ) from None
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TrainingError(
                f"the artifact volume is full: writing {directory} failed with "
                f"{_free(parent)} left; raise spec.storage.size, or free space on "
                "spec.storage.existingClaim"
            ) from None
        raise TrainingError(
            f"cannot write the artifact {directory}: {exc.strerror or exc}; check that the "
            "artifact volume is mounted and writable"
        ) from None
    _fsync(parent)
    return Kept(complete, sha256_file(directory / METADATA_FILE))


def _free(path: Path) -> str:
    """Free space on the volume of `path` (its nearest existing ancestor: a failed write
    removes the directories it made)."""
    existing = next((p for p in (path, *path.parents) if p.exists()), path)
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return "an unknown amount of space"
    return f"{free / 2**20:.1f} MiB"


def prune(model_directory: Path, keep: Collection[str]) -> list[str]:
    """Removes the versions under a model's directory that are not in `keep`; the versions
    removed. A version that cannot be removed is logged and left: pruning never fails a run."""
    removed = []
    for child in sorted(model_directory.iterdir()):
        if not child.is_dir() or not VERSION_NAME.fullmatch(child.name) or child.name in keep:
            continue
        try:
            shutil.rmtree(child)
        except OSError as exc:
            log.warning("cannot remove the old version %s: %s", child, exc)
            continue
        removed.append(child.name)
    if removed:
        log.info("removed versions no longer kept: %s", ", ".join(removed))
    return removed


def _stage(staging: Path, model: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    joblib.dump(model, staging / MODEL_FILE)
    complete = metadata | {"modelFile": MODEL_FILE, "sha256": sha256_file(staging / MODEL_FILE)}
    written = [staging / MODEL_FILE]
    try:
        compiled_form = compile_model(model)
    except NotCompilable as exc:
        log.info("no compiled form (the server unpickles model.joblib): %s", exc)
    else:
        content = compiled.to_bytes(compiled_form)
        (staging / COMPILED_FILE).write_bytes(content)
        complete["compiled"] = {
            "file": COMPILED_FILE,
            "sha256": hashlib.sha256(content).hexdigest(),
            "format": compiled.FORMAT,
            "formatVersion": compiled.FORMAT_VERSION,
        }
        written.append(staging / COMPILED_FILE)
    (staging / METADATA_FILE).write_text(json.dumps(complete, indent=2, allow_nan=False) + "\n")
    for path in (*written, staging / METADATA_FILE, staging):
        _fsync(path)
    # mkdtemp makes it private; the server may run as another user of the volume's group.
    staging.chmod(0o755)
    return complete


def summary(kept: Kept, location: str) -> dict[str, Any]:
    """The termination message and stdout line the operator reads; `location` is the version's
    directory or its s3:// prefix."""
    metadata = kept.metadata
    return {
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "version": metadata["version"],
        "sha256": metadata["sha256"],
        **({"compiledSha256": metadata["compiled"]["sha256"]} if "compiled" in metadata else {}),
        "metadataSha256": kept.metadata_sha256,
        "metrics": metadata["metrics"],
        "artifactPath": location,
        "trainedAt": metadata["createdAt"],
        **({"mlflow": metadata["mlflow"]} if "mlflow" in metadata else {}),
        **({"search": metadata["search"]} if "search" in metadata else {}),
    }


def _discard(staging: Path | None, created: list[Path]) -> None:
    """Removes the staging directory and the parents this run created, deepest first."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    for path in created:
        try:
            path.rmdir()
        except OSError:  # not empty: someone else's artifacts live there too
            break


def _fsync(path: Path) -> None:
    # On a network volume the rename must not be seen before the data it points at.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
