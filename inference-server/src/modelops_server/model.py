"""The one model this server serves: loading it from its artifact directory and answering
predictions, with a ready flag that turns true only after a verified load."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artifact, runtime
from .artifact import Metadata
from .errors import ArtifactError, ModelNotReady
from .inputs import Features
from .prediction import Explanation, Prediction
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    metadata: Metadata
    features: Features
    runtime: runtime.Runtime


class Model:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.name = settings.model_name or ""
        self.version = settings.model_version or ""
        self.sha256 = settings.model_sha256 or ""
        self.loaded: Loaded | None = None
        # Why the model is not ready, for the log and for whoever asks.
        self.problem = "the model has not been loaded yet"

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def load(self) -> bool:
        """Reads, verifies and prepares the artifact; False (and the reason logged) when it
        cannot be served. Never raises: a server without a model stays up and not ready."""
        try:
            self.loaded = self._load()
        except ArtifactError as exc:
            self.problem = str(exc)
            log.error("model not loaded, the server stays not ready: %s", exc)
            return False
        return True

    def predict(self, matrix: np.ndarray) -> Prediction:
        return self._require().runtime.predictor.predict(matrix)

    def explain(self, matrix: np.ndarray) -> tuple[Prediction, Explanation]:
        """The rows' prediction and its explanation; NotExplainable, with the reason, for a
        model that has no explainer."""
        loaded = self._require()
        predictor = loaded.runtime.predictor
        return predictor.predict(matrix), predictor.explain(matrix, loaded.metadata.background)

    def features(self) -> Features:
        return self._require().features

    def _require(self) -> Loaded:
        if self.loaded is None:
            raise ModelNotReady(f"model {self.name!r} is not ready: {self.problem}")
        return self.loaded

    def _load(self) -> Loaded:
        settings = self._settings
        if settings.model_file is not None:
            metadata, estimator = self._load_provided(settings.model_file)
            return self._prepared(metadata, estimator)
        metadata = self._read_metadata()
        compiled_sha256 = self._trusted_compiled_sha256(metadata)
        if metadata.compiled is not None and compiled_sha256 is not None:
            predictor = artifact.load_verified_compiled(
                settings.model_dir, metadata, compiled_sha256
            )
            classification = metadata.task == "classification"
            chosen = runtime.Runtime(predictor, runtime.COMPILED, "", classification)
            return self._loaded(metadata, chosen, f"{metadata.compiled.file}, not unpickled")
        estimator = artifact.load_verified(settings.model_dir, metadata, self.sha256)
        return self._prepared(metadata, estimator)

    def _prepared(self, metadata: Metadata, estimator: Any) -> Loaded:
        """An unpickled estimator, compiled where it can be."""
        _check_fits(estimator, metadata)
        classification = metadata.task == "classification"
        chosen = runtime.select(estimator, classification, self._settings.compile)
        if chosen.reason:
            log.warning(
                "serving %s with scikit-learn, not compiled: %s", metadata.estimator, chosen.reason
            )
        return self._loaded(metadata, chosen, metadata.model_file)

    def _loaded(self, metadata: Metadata, chosen: runtime.Runtime, source: str) -> Loaded:
        settings = self._settings
        log.info(
            "loaded %s version %s (%s, sha256 %s) from %s (%s); runtime %s",
            self.name,
            self.version,
            metadata.estimator,
            self.sha256,
            settings.model_dir,
            source,
            chosen.name,
        )
        return Loaded(metadata, Features(metadata.features, settings.max_batch_rows), chosen)

    def _trusted_compiled_sha256(self, metadata: Metadata) -> str | None:
        """The digest the compiled file is checked against, when it is to be served: from
        whoever gave the model's digest, or metadata.json's when no one did (a local run)."""
        settings = self._settings
        if metadata.compiled is None or not settings.compile:
            return None
        if settings.compiled_sha256:
            return settings.compiled_sha256.lower()
        if settings.model_sha256:
            log.info(
                "MODELOPS_COMPILED_SHA256 is not set, so nothing trusted vouches for %s: "
                "unpickling the verified %s instead",
                metadata.compiled.file,
                metadata.model_file,
            )
            return None
        return metadata.compiled.sha256

    def _load_provided(self, model_file: str) -> tuple[Metadata, Any]:
        """A model file without metadata: only a digest from outside vouches for it."""
        settings = self._settings
        if not settings.model_sha256:
            raise ArtifactError(
                f"{model_file} comes without metadata, so nothing but its expected digest can "
                "vouch for it: set MODELOPS_MODEL_SHA256"
            )
        self.sha256 = settings.model_sha256.lower()
        estimator = artifact.load_verified_file(settings.model_dir, model_file, self.sha256)
        self.name = settings.model_name or Path(model_file).stem
        self.version = settings.model_version or f"v{self.sha256[:12]}"
        metadata = artifact.describe(estimator, self.name, self.version, model_file, self.sha256)
        return metadata, estimator

    def _read_metadata(self) -> Metadata:
        settings = self._settings
        directory = settings.model_dir
        metadata = artifact.read_metadata(directory, settings.metadata_sha256)
        self.name = settings.model_name or metadata.name
        if settings.model_version and settings.model_version != metadata.version:
            raise ArtifactError(
                f"{directory} holds version {metadata.version}, but version "
                f"{settings.model_version} is to be served (MODELOPS_MODEL_VERSION)"
            )
        self.version = metadata.version
        if not settings.model_sha256:
            # metadata.json sits beside the file it vouches for: whoever can replace the model
            # can replace its digest too. This only catches a damaged file.
            log.warning(
                "UNVERIFIED MODEL: no expected digest was given (MODELOPS_MODEL_SHA256), so "
                "%s is checked only against the digest in its own metadata.json; pass the "
                "digest from a source you trust to verify it",
                directory,
            )
        self.sha256 = (settings.model_sha256 or metadata.sha256).lower()
        return metadata


def _check_fits(estimator: Any, metadata: Metadata) -> None:
    """The estimator must take the metadata's features and know its classes, or every
    prediction would fail or be mislabelled."""
    width = getattr(estimator, "n_features_in_", len(metadata.features))
    if width != len(metadata.features):
        raise ArtifactError(
            f"the model takes {width} features but metadata.json lists {len(metadata.features)}"
        )
    if metadata.classes is not None and len(getattr(estimator, "classes_", ())) != len(
        metadata.classes
    ):
        raise ArtifactError("the model's classes do not match metadata.json's target.classes")
