"""Loading the training data: a dataset bundled with scikit-learn, or a CSV file or URL."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets

from .errors import TrainingError, did_you_mean
from .estimators import Task
from .spec import CsvSource, DatasetSpec

BUILTIN: dict[str, tuple[Callable[..., Any], Task]] = {
    "iris": (sk_datasets.load_iris, "classification"),
    "wine": (sk_datasets.load_wine, "classification"),
    "breast_cancer": (sk_datasets.load_breast_cancer, "classification"),
    "digits": (sk_datasets.load_digits, "classification"),
    "diabetes": (sk_datasets.load_diabetes, "regression"),
}
# A socket that sends nothing for this long fails the download.
DOWNLOAD_TIMEOUT_SECONDS = 60
MAX_REDIRECTS = 5
# The trainer's limits, each overridable through its environment variable.
MAX_BYTES_ENV, DEFAULT_MAX_BYTES = "MODELOPS_CSV_MAX_BYTES", 512 * 2**20
DEADLINE_ENV, DEFAULT_DEADLINE_SECONDS = "MODELOPS_CSV_DEADLINE_SECONDS", 600
# A column name that is safe to repeat in a message (and so in the resource's status): text a
# person typed as a header, not the first line of an error page or of binary data.
_PLAIN_NAME = re.compile(r"[^\x00-\x1f\x7f<>]{1,64}")


@dataclass(frozen=True)
class Table:
    features: pd.DataFrame
    target: pd.Series
    # What a bundled dataset is for; a CSV's task is the estimator's.
    task: Task | None
    origin: str


def load(spec: DatasetSpec) -> Table:
    if spec.csv is not None:
        return _load_csv(spec.csv)
    assert spec.builtin is not None  # the spec guarantees exactly one source
    return _load_builtin(spec.builtin)


def fingerprint(table: Table) -> str:
    """A digest of the data as loaded: the same rows and columns give the same fingerprint,
    whichever file or URL they came from."""
    frame = pd.concat([table.features, table.target], axis=1)
    canonical = frame.to_csv(index=False, lineterminator="\n").encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _load_builtin(name: str) -> Table:
    if name not in BUILTIN:
        raise TrainingError(
            f"unknown builtin dataset {name!r}: choose one of {', '.join(BUILTIN)}, "
            "or use dataset.csv for your own data"
        )
    loader, task = BUILTIN[name]
    bunch = loader(as_frame=True)
    target = bunch.target
    if task == "classification":
        # Class names rather than codes, so predictions read "setosa", not 0.
        names = np.asarray(bunch.target_names).astype(str)
        target = pd.Series(names[target.to_numpy()], name=target.name)
    return Table(features=bunch.data, target=target, task=task, origin=f"builtin dataset {name}")


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    deadline_seconds: float

    @classmethod
    def from_environment(cls) -> Limits:
        try:
            return cls(
                int(os.environ.get(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)),
                float(os.environ.get(DEADLINE_ENV, DEFAULT_DEADLINE_SECONDS)),
            )
        except ValueError as exc:
            raise TrainingError(
                f"{MAX_BYTES_ENV} or {DEADLINE_ENV} is not a number: {exc}"
            ) from None


def _load_csv(source: CsvSource) -> Table:
    origin = f"CSV {source.url or source.path}"
    frame = _parse_csv(_read_bytes(source, Limits.from_environment()), origin)
    _check_header(frame, origin)
    column = source.target_column
    if column not in frame.columns:
        columns = [str(c) for c in frame.columns]
        raise TrainingError(
            f"target column {column!r} is not in {origin}: {did_you_mean(column, columns)}"
            f"its columns are {', '.join(columns)}; set dataset.csv.targetColumn to one of them"
        )
    if len(frame.columns) < 2:
        raise TrainingError(
            f"{origin} has only the target column {column!r}: add at least one feature column"
        )
    table = Table(
        features=frame.drop(columns=[column]), target=frame[column], task=None, origin=origin
    )
    _check_missing(table)
    return table


def _check_header(frame: pd.DataFrame, origin: str) -> None:
    odd = [str(column) for column in frame.columns if not _PLAIN_NAME.fullmatch(str(column))]
    if odd:
        raise TrainingError(
            f"{origin} does not start with a header of column names ({len(odd)} of its "
            f"{len(frame.columns)} columns are not plain names of up to 64 characters); is it "
            "a CSV file? An error or login page looks like this"
        )


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """At most MAX_REDIRECTS, and never from https down to http."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise urllib.error.HTTPError(
                req.full_url, code, f"redirect from https to {newurl} refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_bytes(source: CsvSource, limits: Limits) -> bytes:
    too_large = (
        f"is larger than {limits.max_bytes} bytes, the trainer's limit ({MAX_BYTES_ENV}); "
        "train on a sample, or raise the limit"
    )
    if source.path is not None:
        try:
            with open(source.path, "rb") as file:
                if os.fstat(file.fileno()).st_size > limits.max_bytes:
                    raise TrainingError(f"CSV file {source.path} {too_large}")
                return file.read()
        except OSError as exc:
            raise TrainingError(
                f"cannot read CSV file {source.path}: {exc.strerror or exc}; check the path and "
                "that its volume is mounted in the training container"
            ) from None
    assert source.url is not None  # the spec guarantees exactly one location
    deadline = time.monotonic() + limits.deadline_seconds
    opener = urllib.request.build_opener(_SafeRedirects)
    try:
        with opener.open(source.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
                raise TrainingError(f"the CSV at {source.url} {too_large}")
            chunks: list[bytes] = []
            received = 0
            # read1: whatever has arrived, so a trickle cannot hold a read past the deadline.
            while chunk := response.read1(1 << 16):
                received += len(chunk)
                if received > limits.max_bytes:
                    raise TrainingError(f"the CSV at {source.url} {too_large}")
                if time.monotonic() > deadline:
                    raise TrainingError(
                        f"downloading the CSV at {source.url} took longer than "
                        f"{limits.deadline_seconds:g} s, the trainer's limit ({DEADLINE_ENV}), "
                        f"with {received} bytes received; serve it faster, or raise the limit"
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = str(exc.reason)
    except (OSError, ValueError) as exc:  # timeouts and resets mid-body; malformed URLs
        reason = str(exc) or type(exc).__name__
    raise TrainingError(
        f"cannot download CSV from {source.url}: {reason}; check the URL and that the training "
        "pod can reach it"
    )


def _parse_csv(data: bytes, origin: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise TrainingError(f"{origin} is empty: it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise TrainingError(
            f"{origin} is not a readable UTF-8 CSV file ({first_line}); check its format"
        ) from None
    if frame.empty:
        raise TrainingError(f"{origin} has a header but no data rows: add rows")
    return frame


def _check_missing(table: Table) -> None:
    """Missing feature values are imputed later; what cannot be imputed is refused here."""
    target = table.target
    if target.isna().all():
        raise TrainingError(
            f"target column {target.name!r} of {table.origin} has no values: fill it in"
        )
    if target.isna().any():
        rows = np.flatnonzero(target.isna().to_numpy()) + 1
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise TrainingError(
            f"target column {target.name!r} of {table.origin} is empty in {len(rows)} row(s) "
            f"(data rows {shown}, counting from 1): fill in or remove those rows; a label is "
            "never guessed"
        )
    empty = [str(name) for name in table.features.columns if table.features[name].isna().all()]
    if len(empty) == len(table.features.columns):
        raise TrainingError(
            f"{table.origin} has no feature values at all (every one is empty): fill them in"
        )
    if empty:
        raise TrainingError(
            f"feature column(s) {', '.join(map(repr, empty))} of {table.origin} have no values: "
            "remove them or fill them in"
        )
