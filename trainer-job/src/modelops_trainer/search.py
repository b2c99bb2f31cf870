"""`training.search`: Optuna's TPE sampler over the spec's parameter space, each trial scored by
cross-validation on the training split only (the held-out split stays for the quality gate).

Deterministic for a given `randomSeed`: the sampler, the folds and the estimator are seeded, and
trials run one after another. A time limit can end a search early; it then says so.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from threadpoolctl import threadpool_limits

from . import evaluate
from .errors import TrainingError
from .estimators import Task
from .spec import SearchParameter, SearchSpec

log = logging.getLogger(__name__)

# Our metric names (evaluate.score's) as scikit-learn scorers, which are all higher-is-better:
# errors come negated and are reported positive again.
SCORERS: dict[Task, dict[str, str]] = {
    "classification": {
        "accuracy": "accuracy",
        "f1_macro": "f1_macro",
        "precision_macro": "precision_macro",
        "recall_macro": "recall_macro",
        "roc_auc": "roc_auc_ovr",
    },
    "regression": {
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "mape": "neg_mean_absolute_percentage_error",
        "r2": "r2",
    },
}
DEFAULT_METRIC: dict[Task, str] = {"classification": "accuracy", "regression": "r2"}
# Without a time limit of its own, a search may use this share of the Job's deadline (from the
# trainer's start): the rest is for the refit, the evaluation and the upload.
DEADLINE_SHARE = 0.5


@dataclass(frozen=True)
class Trial:
    number: int
    parameters: dict[str, Any]
    # The metric's mean over the folds (errors positive); None for a trial that failed.
    score: float | None
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    metric: str
    folds: int
    best_parameters: dict[str, Any]
    best_score: float
    trials: list[Trial]
    # Why the search ran fewer trials than asked, in words; None when it ran them all.
    stopped: str | None

    def record(self) -> dict[str, Any]:
        """What the artifact's metadata and the summary keep of the search."""
        return {
            "metric": self.metric,
            "folds": self.folds,
            "score": self.best_score,
            "parameters": self.best_parameters,
            "trials": len(self.trials),
            "failedTrials": sum(trial.score is None for trial in self.trials),
            **({"stopped": self.stopped} if self.stopped else {}),
        }


def metric_of(search: SearchSpec, task: Task, gate_metric: str | None) -> str:
    """The metric a search optimizes: its own, else the quality gate's, else the task's default."""
    metric = search.metric or gate_metric or DEFAULT_METRIC[task]
    if metric not in SCORERS[task]:
        raise TrainingError(
            f"search.metric {metric!r} does not suit a {task} model: use one of "
            f"{', '.join(SCORERS[task])}"
        )
    return metric


def check_space(
    search: SearchSpec,
    fixed: dict[str, Any],
    validate: Callable[[dict[str, Any]], None],
) -> None:
    """Every searched name is a hyperparameter the spec does not fix, and every bound and choice
    is a value the estimator accepts: a bad space fails before any data is read."""
    for name, parameter in search.parameters.items():
        if name in fixed:
            raise TrainingError(
                f"hyperparameter {name!r} is both fixed (hyperparameters) and searched "
                "(search.parameters): remove it from one of them"
            )
        for value in _extremes(parameter):
            try:
                validate({name: value})
            except TrainingError as exc:
                raise TrainingError(f"search.parameters.{name}: {exc}") from None


def run(
    search: SearchSpec,
    task: Task,
    metric: str,
    make_model: Callable[[dict[str, Any]], Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int,
    time_limit: tuple[float, str],
) -> Outcome:
    """Runs the search; `time_limit` is the seconds it may take and what sets them, in words."""
    seconds, limited_by = time_limit
    folds = _folds(search.folds, task, y_train, seed)
    scorer = SCORERS[task][metric]
    sign = -1.0 if scorer.startswith("neg_") else 1.0
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        chosen = {name: _suggest(trial, name, p) for name, p in search.parameters.items()}
        try:
            scores = cross_val_score(
                make_model(chosen), x_train, y_train, cv=folds, scoring=scorer, error_score="raise"
            )
        except (ValueError, TrainingError) as exc:
            # Values fine one by one can clash with each other or with the data.
            problem = str(exc).strip().splitlines()[0]
            trials.append(Trial(trial.number, chosen, None, problem))
            raise optuna.TrialPruned(problem) from None
        mean = float(np.mean(scores))
        if not math.isfinite(mean):
            trials.append(Trial(trial.number, chosen, None, "the metric is undefined"))
            raise optuna.TrialPruned("the metric is undefined")
        trials.append(Trial(trial.number, chosen, sign * mean))
        log.info("trial %d: %s=%.4f with %s", trial.number, metric, sign * mean, chosen)
        return mean

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    started = time.monotonic()
    # One OpenMP thread per fit: a trial's fits are small, and OpenMP's threads spin while they
    # wait, which makes them crawl on a node other pods keep busy (65 s instead of 4 for the
    # wine sample's search, measured here).
    with threadpool_limits(limits=1, user_api="openmp"):
        study.optimize(
            objective,
            n_trials=search.trials,
            timeout=None if math.isinf(seconds) else max(seconds, 0.0),
        )
    elapsed = time.monotonic() - started
    scored = [trial for trial in trials if trial.score is not None]
    if not scored:
        problems = "; ".join(sorted({trial.problem or "" for trial in trials}))[:300]
        raise TrainingError(
            f"every one of the search's {len(trials)} trials failed ({problems}): narrow "
            "search.parameters"
        )
    best = max(scored, key=lambda trial: sign * (trial.score or 0.0))
    stopped = (
        f"stopped after {len(trials)} of {search.trials} trials ({elapsed:.0f} s): {limited_by}"
        if len(trials) < search.trials
        else None
    )
    log.info(
        "search: %d trials in %.1fs, best %s=%.4f with %s%s",
        len(trials),
        elapsed,
        metric,
        best.score,
        best.parameters,
        f"; {stopped}" if stopped else "",
    )
    return Outcome(metric, search.folds, best.parameters, float(best.score or 0), trials, stopped)


def time_limit(
    search: SearchSpec, deadline_seconds: int | None, started: float
) -> tuple[float, str]:
    """The seconds the search may run from now, and what sets them: its own timeoutSeconds, or
    the share of the Job's deadline left since `started` (time.monotonic()), whichever is less."""
    limits = []
    if search.timeout_seconds is not None:
        limits.append(
            (
                float(search.timeout_seconds),
                f"the time limit (search.timeoutSeconds: {search.timeout_seconds})",
            )
        )
    if deadline_seconds is not None:
        left = DEADLINE_SHARE * deadline_seconds - (time.monotonic() - started)
        limits.append(
            (
                left,
                f"half the Job's deadline (activeDeadlineSeconds: {deadline_seconds}), the rest "
                "kept for the refit and upload",
            )
        )
    return min(limits, default=(math.inf, "no limit"))


def _folds(count: int, task: Task, y_train: np.ndarray, seed: int) -> KFold | StratifiedKFold:
    if task == "classification":
        smallest = int(np.unique(y_train, return_counts=True)[1].min())
        if smallest < count:
            raise TrainingError(
                f"search.folds is {count} but a class has {smallest} training rows: a stratified "
                f"fold needs a row of each class, so lower search.folds to at most {smallest} or "
                "add rows"
            )
        return StratifiedKFold(count, shuffle=True, random_state=seed)
    if len(y_train) < evaluate.MIN_TEST_ROWS * count:
        raise TrainingError(
            f"search.folds is {count} but there are {len(y_train)} training rows: lower "
            "search.folds or add rows"
        )
    return KFold(count, shuffle=True, random_state=seed)


def _suggest(trial: optuna.Trial, name: str, parameter: SearchParameter) -> Any:
    if parameter.type == "Categorical":
        return trial.suggest_categorical(name, parameter.choices or [])
    low, high = float(parameter.low or 0), float(parameter.high or 0)
    if parameter.type == "Int":
        step = int(parameter.step or 1)
        return trial.suggest_int(name, int(low), int(high), step=step, log=parameter.log)
    return trial.suggest_float(name, low, high, step=parameter.step, log=parameter.log)


def _extremes(parameter: SearchParameter) -> list[Any]:
    if parameter.type == "Categorical":
        return list(parameter.choices or [])
    bounds = [parameter.low, parameter.high]
    return [int(b or 0) for b in bounds] if parameter.type == "Int" else bounds
