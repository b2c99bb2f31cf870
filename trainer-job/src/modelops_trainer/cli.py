"""`modelops-train`: the container's entry point, a thin shell around `train()`.

Exit status 0 with the summary JSON on stdout; 1 for bad input and 3 for a bug in the trainer,
each with one `error: ...` line on stderr (2 is argparse's usage error). The summary or the
error line also goes to the termination message, where the operator reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import artifact
from .errors import TrainingError
from .object_storage import ObjectStore
from .tracking import Tracking
from .training import train

EXIT_BAD_INPUT = 1
EXIT_INTERNAL_ERROR = 3
SPEC_ENV = "MODELOPS_TRAINING_SPEC"
NAMESPACE_ENV = "MODELOPS_NAMESPACE"
KEEP_VERSIONS_ENV = "MODELOPS_KEEP_VERSIONS"
RECORDED_VERSIONS_ENV = "MODELOPS_RECORDED_VERSIONS"
RUN_ID_ENV = "MODELOPS_RUN_ID"
TERMINATION_LOG_ENV = "MODELOPS_TERMINATION_LOG"
# Kubernetes mounts this file into every container; outside a pod it does not exist.
KUBERNETES_TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("modelops_trainer")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.captureWarnings(True)
    try:
        spec, defaults = _read_spec(args.spec)
        name = args.name or defaults.get("name")
        if not name:
            raise TrainingError("no model name: pass --name (it names the artifact directory)")
        namespace = (
            args.namespace
            or defaults.get("namespace")
            or os.environ.get(NAMESPACE_ENV)
            or "default"
        )
        store = ObjectStore(args.upload_root) if args.upload_root else None
        with _stdout_to_stderr():
            summary = train(
                spec,
                Path(args.output_root),
                name,
                namespace,
                store,
                Tracking.from_environment(),
                _provenance(),
            )
        keep = _keep_versions(args.keep_versions)
        if keep is not None:
            kept = keep | {summary["version"]}
            if store is not None:
                store.prune(f"{namespace}/{name}", kept)
            else:
                artifact.prune(Path(summary["artifactPath"]).parent, kept)
    except TrainingError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    except Exception as exc:
        traceback.print_exc()
        return fail(
            f"internal error ({type(exc).__name__}: {exc}): this is a bug in the trainer, "
            "please report it with the log above",
            EXIT_INTERNAL_ERROR,
        )
    line = json.dumps(summary)
    print(line, flush=True)
    write_termination_log(line)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelops-train",
        description="Train a scikit-learn model from a ModelDeployment training spec and write "
        "it as a versioned artifact (docs/artifact-contract.md).",
    )
    parser.add_argument(
        "--spec",
        help="the training spec, YAML or JSON: a file, or - for stdin; a whole ModelDeployment "
        f"resource works too. Default: the JSON in ${SPEC_ENV}",
    )
    parser.add_argument(
        "--output-root", required=True, help="the artifact volume; versions go under it"
    )
    parser.add_argument(
        "--upload-root",
        help="s3://<bucket>/<prefix>: keep the versions in object storage there, under the same "
        "<namespace>/<name>/<version>/ as on the volume, which then only stages them. The "
        "client is configured by the standard AWS variables (AWS_ENDPOINT_URL, ...)",
    )
    parser.add_argument("--name", help="the model's name (default: the spec file's name)")
    parser.add_argument(
        "--namespace", help=f"the model's namespace (default: ${NAMESPACE_ENV}, else 'default')"
    )
    parser.add_argument(
        "--keep-versions",
        help="comma-separated versions of this model to keep: every other version under its "
        "directory (or prefix) is removed once the run has succeeded (the one trained is always kept). "
        f"Default: ${KEEP_VERSIONS_ENV}; when neither is given nothing is removed",
    )
    return parser


def _keep_versions(given: str | None) -> set[str] | None:
    value = given if given is not None else os.environ.get(KEEP_VERSIONS_ENV)
    if value is None:
        return None
    return {version.strip() for version in value.split(",") if version.strip()}


def _provenance() -> artifact.Provenance:
    """What the operator says may vouch for a version already in place."""
    text = os.environ.get(RECORDED_VERSIONS_ENV) or "{}"
    try:
        recorded = json.loads(text)
        if not isinstance(recorded, dict) or not all(
            isinstance(record, dict) for record in recorded.values()
        ):
            raise ValueError("not an object of objects")
    except ValueError as exc:
        raise TrainingError(
            f"${RECORDED_VERSIONS_ENV} is not a JSON object of version records ({exc})"
        ) from None
    return artifact.Provenance(recorded, os.environ.get(RUN_ID_ENV, ""))


def _read_spec(source: str | None) -> tuple[Any, dict[str, str]]:
    """The training spec, and the name and namespace its source suggests."""
    defaults: dict[str, str] = {}
    if source == "-":
        text, origin = sys.stdin.read(), "stdin"
    elif source is not None:
        try:
            text, origin = Path(source).read_text(), source
        except (OSError, UnicodeDecodeError) as exc:
            raise TrainingError(f"cannot read the spec file {source}: {exc}") from None
        defaults["name"] = Path(source).stem
    elif SPEC_ENV in os.environ:
        text, origin = os.environ[SPEC_ENV], f"${SPEC_ENV}"
    else:
        raise TrainingError(f"no training spec: pass --spec FILE (- for stdin) or set ${SPEC_ENV}")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise TrainingError(
            f"the training spec in {origin} is not valid YAML/JSON: {problem}"
        ) from None
    if isinstance(document, dict) and document.get("kind") == "ModelDeployment":
        metadata = document.get("metadata") or {}
        defaults |= {key: metadata[key] for key in ("name", "namespace") if metadata.get(key)}
        document = (document.get("spec") or {}).get("training")
    return document, defaults


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Stdout carries only the summary, but estimators with `verbose` print progress there, from
    Python and from C (libsvm): both go to stderr while training."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def fail(message: str, status: int) -> int:
    line = "error: " + " ".join(message.split())
    print(line, file=sys.stderr, flush=True)
    write_termination_log(line)
    return status


def write_termination_log(text: str) -> None:
    configured = os.environ.get(TERMINATION_LOG_ENV)
    path = Path(configured) if configured else KUBERNETES_TERMINATION_LOG
    if not configured and not path.exists():
        return
    try:
        path.write_text(text + "\n")
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)


if __name__ == "__main__":
    sys.exit(main())
