"""Loading the training data: a dataset bundled with scikit-learn, or a CSV file or URL."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from modelops_server import downloads
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
# The trainer's limits of a download (modelops_server.downloads, which also bounds redirects),
# each overridable through its environment variable.
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


def _limits() -> downloads.Limits:
    try:
        return downloads.Limits.from_environment(
            MAX_BYTES_ENV, DEFAULT_MAX_BYTES, DEADLINE_ENV, DEFAULT_DEADLINE_SECONDS
        )
    except ValueError as exc:
        raise TrainingError(f"{exc}; set the trainer's limit there, or unset it") from None


def _load_csv(source: CsvSource) -> Table:
    origin = f"CSV {source.url or source.path}"
    frame = _parse_csv(_read_bytes(source, _limits()), origin)
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


def _read_bytes(source: CsvSource, limits: downloads.Limits) -> bytes:
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
    url = downloads.shown(source.url)
    data = io.BytesIO()
    try:
        downloads.download(source.url, data, limits)
    except downloads.TooLarge:
        raise TrainingError(f"the CSV at {url} {too_large}") from None
    except downloads.TooSlow as exc:
        raise TrainingError(
            f"downloading the CSV at {url} took longer than {limits.deadline_seconds:g} s, the "
            f"trainer's limit ({DEADLINE_ENV}), with {exc.received} bytes received; serve it "
            "faster, or raise the limit"
        ) from None
    except downloads.DownloadError as exc:
        raise TrainingError(
            f"cannot download CSV from {url}: {exc.reason}; check the URL and that the training "
            "pod can reach it"
        ) from None
    return data.getvalue()


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
