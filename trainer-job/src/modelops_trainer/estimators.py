"""The estimator allow-list and the checking of hyperparameters against each estimator's own
parameter constraints, so a bad one fails with its name instead of deep inside `fit`."""

from __future__ import annotations

from typing import Any, Literal

from sklearn.base import BaseEstimator, is_classifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils._param_validation import InvalidParameterError

from .errors import TrainingError, did_you_mean

Task = Literal["classification", "regression"]

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    cls.__name__: cls
    for cls in (
        RandomForestClassifier,
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        LogisticRegression,
        SVC,
        KNeighborsClassifier,
        DecisionTreeClassifier,
        RandomForestRegressor,
        ExtraTreesRegressor,
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
        LinearRegression,
        Ridge,
        SVR,
        KNeighborsRegressor,
        DecisionTreeRegressor,
    )
}

# SVC has no predict_proba unless asked: the server's probabilities and the roc_auc metric need it.
TRAINER_DEFAULTS: dict[str, dict[str, Any]] = {"SVC": {"probability": True}}


def task_of(name: str) -> Task:
    return "classification" if is_classifier(ESTIMATORS[name]()) else "regression"


def constructor_arguments(name: str, hyperparameters: dict[str, Any], seed: int) -> dict[str, Any]:
    """The arguments the estimator is built with: the trainer's defaults, the spec's seed as
    `random_state` (so the same spec fits the same model), then the spec's own hyperparameters,
    which win. Names are checked here; values by `build`."""
    cls = _estimator_class(name)
    valid = sorted(cls().get_params(deep=False))
    for key in hyperparameters:
        if key not in valid:
            raise TrainingError(
                f"{name} has no hyperparameter {key!r}: {did_you_mean(key, valid)}valid ones are "
                f"{', '.join(valid)}"
            )
    seeded = {"random_state": seed} if "random_state" in valid else {}
    return TRAINER_DEFAULTS.get(name, {}) | seeded | hyperparameters


def build(name: str, arguments: dict[str, Any]) -> BaseEstimator:
    estimator = _estimator_class(name)(**arguments)
    try:
        # scikit-learn's own check of every parameter against its declared constraints, which
        # `fit` would otherwise run only after the data has been loaded.
        estimator._validate_params()
    except InvalidParameterError as exc:
        raise TrainingError(f"bad hyperparameter: {exc}") from None
    return estimator


def _estimator_class(name: str) -> type[BaseEstimator]:
    if name in ESTIMATORS:
        return ESTIMATORS[name]
    raise TrainingError(
        f"unknown estimator {name!r}: {did_you_mean(name, ESTIMATORS)}the allowed estimators are "
        f"{', '.join(ESTIMATORS)}"
    )
