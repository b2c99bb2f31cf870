"""One training run: spec in, verified artifact and summary out."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import type_of_target

from . import artifact, datasets, estimators, evaluate, explanations, features, search
from .errors import TrainingError
from .object_storage import ObjectStore
from .spec import parse_spec
from .tracking import Run, Tracking

log = logging.getLogger(__name__)

# Name and namespace become directory names on the artifact volume.
_PATH_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_EXAMPLE = {"classification": "RandomForestClassifier", "regression": "RandomForestRegressor"}
_KIND = {"classification": "classifier", "regression": "regressor"}


def train(
    spec: dict[str, Any],
    output_root: Path,
    name: str,
    namespace: str = "default",
    store: ObjectStore | None = None,
    tracking: Tracking | None = None,
    provenance: artifact.Provenance = artifact.NOTHING_RECORDED,
) -> dict[str, Any]:
    """Trains the model `spec` describes and writes it as `<output_root>/<namespace>/<name>/
    <version>/`, then uploads it to the same place under `store` when given; returns the
    summary (the termination message). A version trained here is logged to MLflow with
    `tracking`. When that version is already there and `provenance` vouches for it, it is
    reported, not trained (nor logged) again (on the volume, after checking its digests);
    anything else there is replaced. Raises TrainingError on bad input."""
    for label, value in (("name", name), ("namespace", namespace)):
        if not _PATH_COMPONENT.fullmatch(value):
            raise TrainingError(
                f"{label} {value!r} cannot be a directory name: use up to 253 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            )
    started = time.monotonic()
    training = parse_spec(spec)

    def arguments_with(chosen: dict[str, Any]) -> dict[str, Any]:
        return estimators.constructor_arguments(
            training.estimator, training.hyperparameters | chosen, training.random_seed
        )

    # The cheap checks first: a bad estimator or search space fails before any download.
    arguments = arguments_with({})
    estimators.build(training.estimator, arguments)
    task = estimators.task_of(training.estimator)
    if training.search is not None:
        search_metric = search.metric_of(training.search, task, _gate_metric(training.quality_gate))
        search.check_space(
            training.search,
            training.hyperparameters,
            lambda chosen: estimators.build(training.estimator, arguments_with(chosen)),
        )
    table = datasets.load(training.dataset)
    _check_task(table, task, training.estimator)

    data_fingerprint = datasets.fingerprint(table)
    version = artifact.version_of(training.model_inputs(), data_fingerprint)
    relative = f"{namespace}/{name}/{version}"
    directory = Path(output_root) / relative
    if store is not None:
        kept = store.kept(relative)
        if kept is not None and provenance.vouches_for(kept.metadata, kept.metadata_sha256):
            log.info(
                "version %s of %s is already at %s; keeping it", version, name, store.uri(relative)
            )
            return artifact.summary(kept, store.uri(relative))
        if kept is not None:
            log.warning(
                "%s holds a version this model did not record writing: not adopted; this run "
                "writes its own",
                store.uri(relative),
            )
            store.remove(relative)
    previous = artifact.adoptable(directory, provenance)
    if previous is not None:
        log.info("version %s of %s is already at %s; keeping it", version, name, directory)
        return _summary(previous, directory, relative, store)

    encoding = features.encode(table.features)
    split = evaluate.split(
        encoding.matrix, table.target.to_numpy(), task, training.test_size, training.random_seed
    )

    def model_with(chosen: dict[str, Any]) -> Any:
        estimator = estimators.build(training.estimator, arguments_with(chosen))
        if encoding.preprocessor is None:
            return estimator
        return Pipeline([("preprocess", clone(encoding.preprocessor)), ("estimator", estimator)])

    searched = (
        search.run(
            training.search,
            task,
            search_metric,
            model_with,
            split[0],
            split[2],
            training.random_seed,
            search.time_limit(
                training.search, _deadline(training.active_deadline_seconds), started
            ),
        )
        if training.search is not None
        else None
    )
    best = searched.best_parameters if searched is not None else {}
    arguments = arguments_with(best)
    model = model_with(best)
    metrics = _fit_and_score(model, split, task, training.estimator, table.origin)
    background = explanations.background(split[0], encoding.features, training.random_seed)
    importance = explanations.importance(
        model, task == "classification", split[1], encoding.features, background
    )
    logged = (
        tracking.log(
            Run(
                namespace,
                name,
                version,
                parameters={
                    "estimator": training.estimator,
                    "dataset": table.origin,
                    "testSize": training.test_size,
                    "randomSeed": training.random_seed,
                    **{f"hyperparameters.{key}": value for key, value in arguments.items()},
                    **(_search_parameters(searched) if searched is not None else {}),
                },
                metrics=metrics,
                tags={"modelops.version": version, "modelops.dataFingerprint": data_fingerprint},
                model=model,
                example=split[0][:5],
                trials=searched.trials if searched is not None else [],
                trial_metric=f"cv_{searched.metric}" if searched is not None else "",
                importance=importance,
            )
        )
        if tracking is not None
        else None
    )
    metadata = {
        "formatVersion": artifact.FORMAT_VERSION,
        "name": name,
        "namespace": namespace,
        "version": version,
        "task": task,
        "estimator": training.estimator,
        "hyperparameters": arguments,
        "features": encoding.features,
        "target": {
            "name": str(table.target.name),
            "classes": [str(c) for c in model.classes_] if task == "classification" else None,
        },
        "metrics": metrics,
        "dataFingerprint": data_fingerprint,
        **({"search": searched.record()} if searched is not None else {}),
        **({"background": background} if background is not None else {}),
        **({"importance": importance} if importance is not None else {}),
        "libraryVersions": artifact.library_versions(),
        "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trainingSpec": spec,
        **({"run": provenance.run} if provenance.run else {}),
        **({"mlflow": logged} if logged else {}),
    }
    return _summary(artifact.write(directory, model, metadata), directory, relative, store)


def _summary(
    kept: artifact.Kept, directory: Path, relative: str, store: ObjectStore | None
) -> dict[str, Any]:
    location = store.upload(directory, relative) if store else str(directory.absolute())
    return artifact.summary(kept, location)


def _gate_metric(quality_gate: Any) -> str | None:
    metric = quality_gate.get("metric") if isinstance(quality_gate, dict) else None
    return metric if isinstance(metric, str) else None


def _deadline(active_deadline_seconds: Any) -> int | None:
    # The operator fills in the CRD's default; a spec run by hand may have none.
    return active_deadline_seconds if isinstance(active_deadline_seconds, int) else None


def _search_parameters(searched: search.Outcome) -> dict[str, Any]:
    # The best trial's values are the hyperparameters.* already.
    return {
        f"search.{key}": value
        for key, value in searched.record().items()
        if key not in ("parameters", "score")
    }


def _fit_and_score(
    model: Any, split: evaluate.Split, task: estimators.Task, estimator: str, origin: str
) -> dict[str, float]:
    x_train, x_test, y_train, y_test = split
    started = time.perf_counter()
    try:
        model.fit(x_train, y_train)
        metrics = evaluate.score(model, x_test, y_test, task)
    except ValueError as exc:
        # Hyperparameters valid one by one can still clash with each other or with the data
        # (a solver without that penalty, more neighbours than rows).
        problem = str(exc).strip().splitlines()[0]
        raise TrainingError(
            f"{estimator} could not be trained on {origin}: {problem}; adjust the hyperparameters"
        ) from None
    seconds = time.perf_counter() - started
    log.info("trained %s on %d rows in %.2fs: %s", estimator, len(y_train), seconds, metrics)
    return metrics


def _check_task(table: datasets.Table, task: estimators.Task, estimator: str) -> None:
    """The estimator must suit the data: scikit-learn's own errors for this are cryptic."""
    if table.task is not None and table.task != task:
        raise TrainingError(
            f"{table.origin} is a {table.task} dataset but {estimator} is a {_KIND[task]}: "
            f"choose a {_KIND[table.task]}, such as {_EXAMPLE[table.task]}"
        )
    target = table.target
    if task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise TrainingError(
            f"target column {target.name!r} of {table.origin} is not numeric (it holds values "
            f"such as {str(target.iloc[0])!r}) but {estimator} predicts numbers: choose a "
            f"classifier, such as {_EXAMPLE['classification']}"
        )
    if task == "classification" and type_of_target(target.to_numpy()) == "continuous":
        raise TrainingError(
            f"target column {target.name!r} of {table.origin} holds continuous numbers but "
            f"{estimator} predicts classes: choose a regressor, such as {_EXAMPLE['regression']}"
        )
