"""Each training run logged to MLflow, where a tracking server is configured the standard way
(MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN where it wants them):
its parameters, metrics, data fingerprint and model, registered as a new version of the
model `<namespace>.<name>`. mlflow is imported only then: it is slow to import."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import explanations
from .errors import TrainingError
from .search import Trial

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
# The model's own folder in the run, and the format the server can read without skops.
MODEL_NAME = "model"
SERIALIZATION_FORMAT = "cloudpickle"
# The run's artifacts beside the model: global importance, as numbers and as a bar chart.
IMPORTANCE_FILE = "importance.json"
IMPORTANCE_CHART = "importance.svg"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """What one training run tells MLflow."""

    namespace: str
    name: str
    version: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    model: Any
    # A few training rows: MLflow infers the model's signature from them.
    example: Any
    # A hyperparameter search's trials, each a nested run with its score as `trial_metric`.
    trials: Sequence[Trial] = ()
    trial_metric: str = ""
    # Each feature's mean |SHAP value| on the held-out rows (explanations.importance).
    importance: dict[str, Any] | None = None


@dataclass(frozen=True)
class Tracking:
    uri: str

    @classmethod
    def from_environment(cls) -> Tracking | None:
        uri = os.environ.get(TRACKING_URI_ENV, "").strip()
        return cls(uri.rstrip("/")) if uri else None

    def log(self, run: Run) -> dict[str, str]:
        """The run logged and its model registered; what the summary says of them."""
        try:
            return self._log(run)
        except Exception as exc:
            raise self._refused("log the run to", exc) from None

    def point_alias(self, registered: str, version: str, alias: str) -> None:
        """Points `alias` of the registered model at `version` (MLflow moves it from any other)."""
        try:
            import mlflow

            client = mlflow.MlflowClient(tracking_uri=self.uri)
            client.set_registered_model_alias(registered, alias, version)
        except Exception as exc:
            what = f"point alias {alias!r} of {registered} at version {version} in"
            raise self._refused(what, exc) from None
        log.info("alias %s of %s now points at version %s", alias, registered, version)

    def _refused(self, doing: str, exc: Exception) -> TrainingError:
        """`doing` ends with the preposition before "MLflow at <uri>"."""
        # MLflow's own exceptions, and requests' when the server is away.
        problem = " ".join(str(exc).split())[:300]
        return TrainingError(
            f"cannot {doing} MLflow at {self.uri}: {type(exc).__name__}: {problem}; check "
            "spec.mlflow.trackingUri (or the operator's MODELOPS_MLFLOW) and its credentials "
            "Secret"
        )

    def _log(self, run: Run) -> dict[str, str]:
        import mlflow
        import sklearn
        from mlflow.models import infer_signature

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        experiment_name = f"modelops/{run.namespace}/{run.name}"
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(experiment_name)
        )
        registered = f"{run.namespace}.{run.name}"
        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run.version) as active:
            mlflow.log_params(run.parameters)
            mlflow.log_metrics(run.metrics)
            mlflow.set_tags(run.tags)
            for trial in run.trials:
                with mlflow.start_run(
                    experiment_id=experiment_id, run_name=f"trial-{trial.number}", nested=True
                ):
                    mlflow.log_params(trial.parameters)
                    if trial.score is None:
                        mlflow.set_tag("modelops.trialFailed", trial.problem or "")
                    else:
                        mlflow.log_metric(run.trial_metric, trial.score)
            if run.importance is not None:
                mlflow.log_dict(run.importance, IMPORTANCE_FILE)
                mlflow.log_text(explanations.bar_chart(run.importance), IMPORTANCE_CHART)
            logged = mlflow.sklearn.log_model(
                run.model,
                name=MODEL_NAME,
                serialization_format=SERIALIZATION_FORMAT,
                registered_model_name=registered,
                signature=infer_signature(run.example, run.model.predict(run.example)),
                # Known, not inferred: inference loads the model again in a subprocess.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            )
        run_id = active.info.run_id
        model_version = str(logged.registered_model_version)
        log.info(
            "logged run %s to %s; registered %s version %s",
            run_id,
            self.uri,
            registered,
            model_version,
        )
        return {
            "runId": run_id,
            "runUrl": f"{self.uri}/#/experiments/{experiment_id}/runs/{run_id}",
            "modelUri": f"models:/{registered}/{model_version}",
            "modelUrl": f"{self.uri}/#/models/{quote(registered)}/versions/{model_version}",
        }
