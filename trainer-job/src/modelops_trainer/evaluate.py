"""The held-out split and the metrics named in the artifact contract."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from sklearn import metrics
from sklearn.model_selection import train_test_split

from .errors import TrainingError
from .estimators import Task

log = logging.getLogger(__name__)

# Stratification puts each class on both sides of the split.
MIN_ROWS_PER_CLASS = 2
# r2 is undefined on a single row.
MIN_TEST_ROWS = 2

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def split(x: np.ndarray, y: np.ndarray, task: Task, test_size: float, seed: int) -> Split:
    """Train and test rows, stratified by class for classification."""
    if task == "classification":
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise TrainingError(
                f"the target has a single class ('{labels[0]}'): a classifier needs at least two"
            )
        rare = [f"'{label}'" for label in labels[counts < MIN_ROWS_PER_CLASS]]
        if rare:
            more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
            raise TrainingError(
                f"class(es) {', '.join(rare[:5])}{more} have a single row, too few for a "
                f"stratified split, which needs {MIN_ROWS_PER_CLASS} rows per class: add rows "
                "for them or remove those rows"
            )
    try:
        parts: list[np.ndarray] = train_test_split(
            x,
            y,
            test_size=test_size,
            random_state=seed,
            stratify=y if task == "classification" else None,
        )
    except ValueError as exc:
        raise TrainingError(
            f"cannot split {len(y)} rows with testSize {test_size}: {exc}; change testSize or "
            "add rows"
        ) from None
    x_train, x_test, y_train, y_test = parts
    if len(y_test) < MIN_TEST_ROWS:
        raise TrainingError(
            f"testSize {test_size} holds out {len(y_test)} of {len(y)} rows, too few to measure "
            f"the model: raise testSize or add rows so at least {MIN_TEST_ROWS} are held out"
        )
    return x_train, x_test, y_train, y_test


def score(model: Any, x_test: np.ndarray, y_test: np.ndarray, task: Task) -> dict[str, float]:
    predicted = model.predict(x_test)
    scores: dict[str, float]
    if task == "regression":
        scores = {
            "rmse": metrics.root_mean_squared_error(y_test, predicted),
            "mae": metrics.mean_absolute_error(y_test, predicted),
            "mape": _mape(y_test, predicted),
            "r2": metrics.r2_score(y_test, predicted),
        }
    else:
        scores = {
            "accuracy": metrics.accuracy_score(y_test, predicted),
            "f1_macro": metrics.f1_score(y_test, predicted, average="macro", zero_division=0),
            "precision_macro": metrics.precision_score(
                y_test, predicted, average="macro", zero_division=0
            ),
            "recall_macro": metrics.recall_score(
                y_test, predicted, average="macro", zero_division=0
            ),
        }
        if hasattr(model, "predict_proba"):
            scores["roc_auc"] = _roc_auc(model, x_test, y_test)
    # JSON has no NaN; an undefined metric is left out rather than reported as a number.
    return {name: float(value) for name, value in scores.items() if math.isfinite(value)}


def _roc_auc(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> float:
    probabilities = model.predict_proba(x_test)
    try:
        if probabilities.shape[1] == 2:
            return float(metrics.roc_auc_score(y_test, probabilities[:, 1]))
        return float(
            metrics.roc_auc_score(
                y_test, probabilities, multi_class="ovr", average="macro", labels=model.classes_
            )
        )
    except ValueError as exc:
        # A held-out set missing a class leaves the metric undefined, not the model wrong.
        log.warning("roc_auc left out: %s", exc)
        return math.nan


def _mape(y_test: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error, as a fraction (0.1 is 10%)."""
    zeros = int(np.count_nonzero(y_test == 0))
    if zeros:
        # scikit-learn divides by a machine epsilon there: a number, but no percentage of anything.
        log.warning("mape left out: %d held-out targets are 0", zeros)
        return math.nan
    return float(metrics.mean_absolute_percentage_error(y_test, predicted))
