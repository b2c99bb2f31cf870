"""What the server does, whatever the protocol: predictions for the simple API, the Open
Inference Protocol's health, metadata and inference, and their metrics. Takes and returns plain
Python values; the REST layer only moves them in and out of HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from . import __version__, runtime, v2
from .artifact import Feature
from .batching import Batches
from .errors import HistoryNotKept, InvalidInput, ModelNotFound
from .metrics import Metrics
from .model import Model
from .prediction import Explanation, Prediction
from .settings import Settings

SERVER_NAME = "modelops-inference-server"
# What a v2 explain response says of its tensors, in its parameters.
EXPLANATION_PARAMETERS = ("method", "units", "outputs", "features")
PLATFORM = "scikit-learn"


class DataPlane:
    def __init__(self, model: Model, metrics: Metrics, settings: Settings) -> None:
        self.model = model
        self._metrics = metrics
        self._settings = settings
        # Class labels as a list: indexing it per row is cheap and orjson writes it natively.
        self._classes: list[str] | None = None
        # Where a model scikit-learn runs itself is predicted (batching.py); None while the
        # model is compiled (or not loaded), as a compiled model answers on the event loop, in
        # microseconds to milliseconds.
        self._batches: Batches | None = None

    def load(self) -> bool:
        if not self.model.load():
            return False
        loaded = self.model.loaded
        assert loaded is not None
        if loaded.runtime.name == runtime.SCIKIT_LEARN:
            self._batches = Batches(
                loaded.runtime.predictor.predict,
                self._settings.prediction_threads,
                self._settings.max_batch_rows,
                self._metrics,
            )
        metadata = loaded.metadata
        if metadata.classes is not None:
            self._classes = list(metadata.classes)
        self._metrics.model_loaded(
            self.model.name,
            self.model.version,
            self.model.sha256,
            loaded.runtime.name,
            metadata.metrics,
        )
        return True

    # --- the simple API

    async def predict(self, body: Any) -> dict[str, Any]:
        if type(body) is not dict or "instances" not in body:
            raise InvalidInput(
                "the request must be a JSON object with an 'instances' list: rows as lists in "
                "feature order or as objects keyed by feature name"
            )
        prediction = await self._predict(self.model.features().from_rows(body["instances"]))
        answer: dict[str, Any] = {
            "model_name": self.model.name,
            "model_version": self.model.version,
        }
        if self._classes is None:
            answer["predictions"] = prediction.outputs
        else:
            answer["predictions"] = labels(self._classes, prediction)
            answer["classes"] = self._classes
            if prediction.probabilities is not None:
                answer["probabilities"] = prediction.probabilities
        return answer

    # --- explanations, in either API

    async def explain(self, body: Any) -> dict[str, Any]:
        """/explain: the predictions of /predict, and each feature's contribution to them."""
        if type(body) is not dict or "instances" not in body:
            raise InvalidInput(
                "the request must be a JSON object with an 'instances' list, as /predict takes"
            )
        matrix = self.model.features().from_rows(body["instances"])
        prediction, explanation = await self._explain(matrix)
        answer = {
            "model_name": self.model.name,
            "model_version": self.model.version,
            "predictions": (
                prediction.outputs if self._classes is None else labels(self._classes, prediction)
            ),
        }
        return answer | self._explained(explanation)

    async def explain_v2(
        self, name: str, version: str | None, body: Any, binary: memoryview | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """/v2/models/{name}/explain: an infer request in, the explanation as output tensors
        (contributions [rows, features, outputs] and base_values [outputs]) out."""
        self._check_served(name, version)
        request = v2.read_request(body, self.model.features(), binary)
        wanted = v2.check_outputs(request.outputs, list(v2.EXPLANATION_OUTPUTS))
        _, explanation = await self._explain(request.matrix)
        described = self._explained(explanation)
        answer: dict[str, Any] = {
            "model_name": self.model.name,
            "model_version": self.model.version,
            "parameters": {key: described[key] for key in EXPLANATION_PARAMETERS},
        }
        if request.id is not None:
            answer["id"] = request.id
        outputs = v2.write_explanation(explanation, request, wanted)
        answer["outputs"] = outputs.tensors
        return answer, outputs.blobs

    async def _explain(self, matrix: np.ndarray) -> tuple[Prediction, Explanation]:
        # Off the event loop: a row costs tens of microseconds, fifty times a prediction, and
        # the C loop lets go of the GIL meanwhile.
        return await asyncio.to_thread(self.model.explain, matrix)

    def _explained(self, explanation: Explanation) -> dict[str, Any]:
        """What an explanation's numbers are, and the numbers."""
        if self._classes is None:
            outputs = ["prediction"]
        elif explanation.contributions.shape[2] == 1:
            # A binary classifier's one score: the log-odds of the second class.
            outputs = self._classes[1:]
        else:
            outputs = self._classes
        return {
            "method": explanation.method,
            "units": explanation.units,
            "outputs": outputs,
            "features": self.model.features().names,
            "base_values": explanation.base_values,
            "contributions": explanation.contributions,
        }

    # --- the model card: what the model's page and the load generator are built from

    def card(self) -> dict[str, Any]:
        self.model.features()  # raises ModelNotReady, with the reason, until loaded
        loaded = self.model.loaded
        assert loaded is not None
        metadata = loaded.metadata
        return {
            "name": self.model.name,
            "version": self.model.version,
            "task": metadata.task,
            "estimator": metadata.estimator,
            "features": [_feature_card(feature) for feature in metadata.features],
            "classes": self._classes,
            "metrics": metadata.metrics,
            "trainedAt": metadata.created_at,
            "importance": metadata.importance,
            "sha256": self.model.sha256,
            "runtime": {
                "name": loaded.runtime.name,
                "reason": loaded.runtime.reason,
                "server": f"{SERVER_NAME} {__version__}",
                "libraries": metadata.library_versions,
            },
        }

    def history(self) -> dict[str, Any]:
        """The model's versions as the operator last wrote them (MODELOPS_HISTORY_FILE)."""
        path = self._settings.history_file
        if path is None:
            raise HistoryNotKept(
                "this server keeps no history of versions: the operator gives it one "
                "(MODELOPS_HISTORY_FILE)"
            )
        try:
            history = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise HistoryNotKept(f"{path} is not there (yet): the operator writes it") from None
        except (OSError, ValueError) as exc:
            raise HistoryNotKept(f"{path} cannot be read: {exc}") from None
        if type(history) is not dict or type(history.get("versions")) is not list:
            raise HistoryNotKept(f"{path} is not a history of versions")
        return history

    # --- the Open Inference Protocol

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": [v2.BINARY_EXTENSION]}

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        self._check_served(name, version)
        loaded = self.model.loaded
        features = self.model.features()
        assert loaded is not None
        metadata = loaded.metadata
        classification = self._classes is not None
        outputs = [
            {"name": v2.PREDICT, "datatype": "BYTES" if classification else "FP64", "shape": [-1]}
        ]
        if classification and v2.PREDICT_PROBA in self._output_names():
            outputs.append(
                {
                    "name": v2.PREDICT_PROBA,
                    "datatype": "FP64",
                    "shape": [-1, len(metadata.classes or ())],
                }
            )
        return {
            "name": self.model.name,
            "versions": [self.model.version],
            "platform": PLATFORM,
            "inputs": [
                {
                    "name": "input-0",
                    "datatype": "FP64" if features.numeric_only else "BYTES",
                    "shape": [-1, len(features.names)],
                }
            ],
            "outputs": outputs,
            "parameters": {
                "estimator": metadata.estimator,
                "task": metadata.task,
                "features": [{"name": f.name, "type": f.type} for f in metadata.features],
                "classes": list(metadata.classes) if metadata.classes is not None else None,
                "sha256": self.model.sha256,
                "runtime": loaded.runtime.name,
                "runtime_reason": loaded.runtime.reason,
            },
        }

    def model_ready(self, name: str, version: str | None) -> bool:
        self._check_served(name, version)
        return self.model.ready

    async def infer(
        self, name: str, version: str | None, body: Any, binary: memoryview | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """The response's JSON, and the bytes of the outputs asked for as binary data."""
        self._check_served(name, version)
        request = v2.read_request(body, self.model.features(), binary)
        wanted = v2.check_outputs(request.outputs, self._output_names())
        prediction = await self._predict(request.matrix)
        answer: dict[str, Any] = {
            "model_name": self.model.name,
            "model_version": self.model.version,
        }
        if request.id is not None:
            answer["id"] = request.id
        predicted = None if self._classes is None else labels(self._classes, prediction)
        outputs = v2.write_outputs(prediction, predicted, request, wanted)
        answer["outputs"] = outputs.tensors
        return answer, outputs.blobs

    # ---

    async def _predict(self, matrix: np.ndarray) -> Prediction:
        batches = self._batches
        prediction = (
            self.model.predict(matrix) if batches is None else await batches.predict(matrix)
        )
        self._metrics.batch(len(matrix))
        if self._classes is not None:
            counts = np.bincount(prediction.outputs, minlength=len(self._classes))
            self._metrics.predicted((self._classes[k], int(n)) for k, n in enumerate(counts) if n)
        return prediction

    def _output_names(self) -> list[str]:
        loaded = self.model.loaded
        has_probabilities = loaded is not None and loaded.runtime.has_probabilities
        return v2.output_names(self._classes is not None and has_probabilities)

    def _check_served(self, name: str, version: str | None) -> None:
        # A model that failed to load before its name was known answers to any name: not ready.
        if self.model.name and name != self.model.name:
            raise ModelNotFound(
                f"model {name!r} is not served here; this server serves {self.model.name!r}"
            )
        if version is not None and self.model.version and version != self.model.version:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r} here; this server serves version "
                f"{self.model.version!r}"
            )


def labels(classes: list[str], prediction: Prediction) -> list[str]:
    return [classes[i] for i in prediction.outputs.tolist()]


def _feature_card(feature: Feature) -> dict[str, Any]:
    card: dict[str, Any] = {"name": feature.name, "type": feature.type}
    if feature.categories is not None:
        card["categories"] = list(feature.categories)
    if feature.minimum is not None and feature.maximum is not None:
        card["min"] = feature.minimum
        card["max"] = feature.maximum
    return card
