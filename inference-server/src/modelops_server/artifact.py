"""Reading an artifact directory (docs/artifact-contract.md): its metadata, and its model only
after the file's digest matched, because unpickling runs code; or its compiled form (numbers
only), also checked."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import compiled
from .errors import ArtifactError

METADATA_FILE = "metadata.json"
# How a skops file (a zip archive) starts; a pickle starts otherwise.
ZIP_MAGIC = b"PK\x03\x04"
SUPPORTED_FORMAT = 1


@dataclass(frozen=True)
class Feature:
    name: str
    type: Literal["numeric", "categorical"]
    # What training saw, where the trainer recorded it: the bounds of the model's page and of
    # generated load.
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class CompiledFile:
    """The compiled form the trainer wrote beside the model file (model.npz)."""

    file: str
    sha256: str


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str
    task: Literal["classification", "regression"]
    estimator: str
    features: tuple[Feature, ...]
    # Class labels in the model's `classes_` order; None for regression.
    classes: tuple[str, ...] | None
    metrics: dict[str, float]
    model_file: str
    sha256: str
    # When and with what it was trained; unknown for a model trained elsewhere.
    created_at: str | None = None
    library_versions: dict[str, str] = field(default_factory=dict)
    # Absent for a model with no compiled form (or trained before there was one).
    compiled: CompiledFile | None = None
    # Training rows (in feature order, numbers and strings) that explanations take the
    # features a coalition leaves out from; absent before explanations, or without metadata.
    background: np.ndarray | None = None
    # Each feature's mean |SHAP value| on the held-out rows, and how it was computed.
    importance: dict[str, Any] | None = None


def read_metadata(directory: Path, expected_sha256: str | None = None) -> Metadata:
    """The version's metadata; with `expected_sha256` (the digest recorded when the version
    was trained) only if metadata.json still has it: its feature order and class names decide
    every answer, as the model file does."""
    path = directory / METADATA_FILE
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"{path} does not exist: is {directory} an artifact directory?"
        ) from None
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    if expected_sha256 is not None:
        actual = hashlib.sha256(content).hexdigest()
        if actual != expected_sha256.lower():
            raise ArtifactError(
                f"{path} has sha256 {actual}, not the {expected_sha256} recorded when the "
                "version was trained: it was changed since, and its features and classes are "
                "not trusted; restore it or train the model again"
            )
    try:
        raw = json.loads(content)
    except ValueError as exc:
        raise ArtifactError(f"{path} cannot be read as JSON: {exc}") from None
    try:
        if raw["formatVersion"] != SUPPORTED_FORMAT:
            raise ArtifactError(
                f"{path} has formatVersion {raw['formatVersion']!r}; this server reads "
                f"{SUPPORTED_FORMAT}: serve it with a matching server image"
            )
        classes = raw["target"]["classes"]
        features = tuple(feature(f) for f in raw["features"])
        return Metadata(
            name=str(raw["name"]),
            version=str(raw["version"]),
            task=_one_of(raw["task"], ("classification", "regression"), "task"),
            estimator=str(raw["estimator"]),
            features=features,
            classes=None if classes is None else tuple(str(c) for c in classes),
            metrics={str(k): float(v) for k, v in raw.get("metrics", {}).items()},
            model_file=str(raw["modelFile"]),
            sha256=str(raw["sha256"]).lower(),
            created_at=None if raw.get("createdAt") is None else str(raw["createdAt"]),
            library_versions={
                str(k): str(v) for k, v in (raw.get("libraryVersions") or {}).items()
            },
            compiled=_compiled_file(raw.get("compiled")),
            background=background_rows(raw.get("background"), features),
            importance=_importance(raw.get("importance")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path} does not follow the artifact contract: {exc!r}") from None


def feature(raw: dict[str, Any]) -> Feature:
    """A feature as metadata.json describes it."""
    categories = raw.get("categories")
    return Feature(
        str(raw["name"]),
        _one_of(raw["type"], ("numeric", "categorical"), "type"),
        categories=None if categories is None else tuple(str(c) for c in categories),
        minimum=_number_or_none(raw.get("min")),
        maximum=_number_or_none(raw.get("max")),
    )


def background_rows(raw: Any, features: tuple[Feature, ...]) -> np.ndarray | None:
    """The background rows as the server's own inputs are: float64 when every feature is a
    number, else objects (floats and strings)."""
    if raw is None:
        return None
    rows = raw["rows"]
    if type(rows) is not list or not rows:
        raise ValueError("background.rows must be a non-empty list")
    numeric_only = all(column.type == "numeric" for column in features)
    matrix = np.empty((len(rows), len(features)), dtype=np.float64 if numeric_only else object)
    for index, row in enumerate(rows):
        if type(row) is not list or len(row) != len(features):
            raise ValueError(f"background row {index} does not have one value per feature")
        for column, (described, value) in enumerate(zip(features, row, strict=True)):
            numeric = described.type == "numeric"
            if numeric and (type(value) not in (int, float) or not np.isfinite(value)):
                raise ValueError(f"background row {index}: {described.name!r} is not a number")
            if not numeric and type(value) is not str:
                raise ValueError(f"background row {index}: {described.name!r} is not a string")
            matrix[index, column] = float(value) if numeric else value
    return matrix


def _importance(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    return {
        "method": str(raw["method"]),
        "rows": int(raw["rows"]),
        "units": str(raw["units"]),
        "features": {str(name): float(value) for name, value in raw["features"].items()},
    }


def _compiled_file(raw: Any) -> CompiledFile | None:
    if raw is None:
        return None
    return CompiledFile(str(raw["file"]), str(raw["sha256"]).lower())


def _number_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def load_verified(directory: Path, metadata: Metadata, expected_sha256: str) -> Any:
    """The unpickled model, after checking that the file's sha256 is `expected_sha256`."""
    return load_verified_file(directory, metadata.model_file, expected_sha256)


def load_verified_file(directory: Path, model_file: str, expected_sha256: str) -> Any:
    """The unpickled `directory/model_file`, after checking that its sha256 is
    `expected_sha256`. The bytes hashed are the bytes unpickled: the file is read once, so a
    swap after the check cannot slip in."""
    path, content = _read_verified(directory, model_file, expected_sha256)
    try:
        if content.startswith(ZIP_MAGIC):
            return _load_skops(content)
        import joblib  # only here: a compiled model is served without it

        return joblib.load(io.BytesIO(content))
    except ArtifactError:
        raise
    except Exception as exc:
        # Whatever the unpickler raises (a missing class, a truncated file, a library mismatch).
        raise ArtifactError(f"{path} cannot be loaded: {type(exc).__name__}: {exc}") from None


def load_verified_compiled(
    directory: Path, metadata: Metadata, expected_sha256: str
) -> compiled.Compiled:
    """The compiled model in `directory`, read once and checked against `expected_sha256`;
    plain arrays, so nothing in the file runs. It must take the metadata's features and answer
    its classes, as `model.py` checks an unpickled estimator."""
    assert metadata.compiled is not None
    path, content = _read_verified(directory, metadata.compiled.file, expected_sha256)
    try:
        model = compiled.from_bytes(content)
    except compiled.CompiledFileError as exc:
        raise ArtifactError(f"{path} cannot be served: {exc}") from None
    if model.features != len(metadata.features):
        raise ArtifactError(
            f"{path} takes {model.features} features but {METADATA_FILE} lists "
            f"{len(metadata.features)}"
        )
    if model.classes != len(metadata.classes or ()):
        raise ArtifactError(f"{path} answers {model.classes} classes, not {METADATA_FILE}'s")
    return model.predictor


def _read_verified(directory: Path, name: str, expected_sha256: str) -> tuple[Path, bytes]:
    path = directory / name
    if path.parent != directory:
        raise ArtifactError(f"model file {name!r} must name a file in {directory}")
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read: {exc}") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected_sha256.lower():
        raise ArtifactError(
            f"{path} has sha256 {actual}, expected {expected_sha256}: the file is not the model "
            "that was trained and verified, so it is not loaded"
        )
    return path, content


def _load_skops(content: bytes) -> Any:
    """A model saved with skops (a zip: MLflow's default for scikit-learn), which loads without
    unpickling. skops holds back types it cannot vouch for against a crafted file (a tree's raw
    node arrays); the digest the operator was given vouches for these bytes, so they load."""
    import skops.io

    return skops.io.loads(content, trusted=skops.io.get_untrusted_types(data=content))


def describe(estimator: Any, name: str, version: str, model_file: str, sha256: str) -> Metadata:
    """The metadata of a model that came without any (trained elsewhere, spec.model), read off
    the fitted estimator or Pipeline: its input width and column names, and its classes."""
    width = getattr(estimator, "n_features_in_", None)
    if not isinstance(width, int):
        raise ArtifactError(
            f"{model_file} holds a {type(estimator).__name__}, which does not say how many "
            "features it takes (no n_features_in_): serve a fitted scikit-learn estimator or "
            "Pipeline"
        )
    names = getattr(estimator, "feature_names_in_", None)
    features = (
        tuple(str(feature) for feature in names)
        if names is not None
        else tuple(f"x{index}" for index in range(width))
    )
    classes = getattr(estimator, "classes_", None)
    return Metadata(
        name=name,
        version=version,
        task="regression" if classes is None else "classification",
        estimator=_estimator_name(estimator),
        # Whether a column takes strings is not recorded in a fitted model: numbers it is.
        features=tuple(Feature(feature, "numeric") for feature in features),
        classes=None if classes is None else tuple(str(label) for label in classes),
        metrics={},
        model_file=model_file,
        sha256=sha256,
    )


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        # A Pipeline is named by what it ends in: Pipeline(StandardScaler, LogisticRegression).
        inner = ", ".join(type(step).__name__ for _, step in steps)
        return f"{type(estimator).__name__}({inner})"
    return type(estimator).__name__


def _one_of(value: Any, allowed: tuple[str, ...], field: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{field} {value!r} is not one of {', '.join(allowed)}")
    return value
