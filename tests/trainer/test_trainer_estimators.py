"""Every allowed estimator trains; hyperparameters are checked by name and by value."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from modelops_operator import api
from modelops_trainer import TrainingError, evaluate, train
from modelops_trainer.estimators import ESTIMATORS, TRAINER_DEFAULTS, task_of
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import Pipeline

# Small settings, so the whole allow-list trains in a few seconds.
FAST: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": {"n_estimators": 5},
    "ExtraTreesClassifier": {"n_estimators": 5},
    "GradientBoostingClassifier": {"n_estimators": 5},
    "HistGradientBoostingClassifier": {"max_iter": 5},
    "LogisticRegression": {"max_iter": 500},
    "SVC": {},
    "KNeighborsClassifier": {"n_neighbors": 3},
    "DecisionTreeClassifier": {"max_depth": 3},
    "RandomForestRegressor": {"n_estimators": 5},
    "ExtraTreesRegressor": {"n_estimators": 5},
    "GradientBoostingRegressor": {"n_estimators": 5},
    "HistGradientBoostingRegressor": {"max_iter": 5},
    "LinearRegression": {},
    "Ridge": {"alpha": 0.5},
    "SVR": {"C": 10.0},
    "KNeighborsRegressor": {"n_neighbors": 5},
    "DecisionTreeRegressor": {"max_depth": 3},
}
# scikit-learn 1.9 deprecates SVC(probability=True), the trainer's default for SVC (its removal,
# due in 1.11, fails test_svc_gets_probabilities_unless_told_otherwise).
pytestmark = pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
CLASSIFICATION_METRICS = {"accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"}
REGRESSION_METRICS = {"rmse", "mae", "mape", "r2"}


def _metadata(summary: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (Path(summary["artifactPath"]) / "metadata.json").read_text()
    )
    return result


def test_the_allow_list_is_the_operators() -> None:
    assert set(ESTIMATORS) == set(FAST) == set(api.CLASSIFIERS) | set(api.REGRESSORS)
    assert {name for name in ESTIMATORS if task_of(name) == "regression"} == set(api.REGRESSORS)


@pytest.mark.parametrize("estimator", sorted(FAST))
def test_every_estimator_trains(estimator: str, output_root: Path) -> None:
    regression = task_of(estimator) == "regression"
    spec = {
        "dataset": {"builtin": "diabetes" if regression else "iris"},
        "estimator": estimator,
        "hyperparameters": FAST[estimator],
    }
    summary = train(spec, output_root, "m")
    metadata = _metadata(summary)
    model = joblib.load(Path(summary["artifactPath"]) / "model.joblib")

    # All-numeric data: the bare estimator, for the server's fast path.
    assert type(model).__name__ == estimator
    assert set(summary["metrics"]) == (REGRESSION_METRICS if regression else CLASSIFICATION_METRICS)
    assert metadata["task"] == ("regression" if regression else "classification")
    assert metadata["hyperparameters"].items() >= FAST[estimator].items()
    if "random_state" in model.get_params():
        assert metadata["hyperparameters"]["random_state"] == 42
    if regression:
        assert summary["metrics"]["r2"] > 0.2
    else:
        assert summary["metrics"]["accuracy"] > 0.8


def test_svc_gets_probabilities_unless_told_otherwise(
    iris_spec: Callable[..., dict[str, Any]], output_root: Path
) -> None:
    assert TRAINER_DEFAULTS["SVC"] == {"probability": True}
    default = train(iris_spec(estimator="SVC", hyperparameters={}), output_root, "a")
    assert "roc_auc" in default["metrics"]
    assert _metadata(default)["hyperparameters"]["probability"] is True

    told = train(
        iris_spec(estimator="SVC", hyperparameters={"probability": False}), output_root, "b"
    )
    assert "roc_auc" not in told["metrics"]
    assert _metadata(told)["hyperparameters"]["probability"] is False


def test_an_explicit_random_state_wins_over_the_seed(
    iris_spec: Callable[..., dict[str, Any]], output_root: Path
) -> None:
    summary = train(
        iris_spec(hyperparameters={"n_estimators": 5, "random_state": 3}), output_root, "m"
    )
    assert _metadata(summary)["hyperparameters"]["random_state"] == 3


@pytest.mark.parametrize(
    ("estimator", "hyperparameters", "expected"),
    [
        ("RandomForest", {}, "unknown estimator 'RandomForest': did you mean 'RandomForest"),
        ("MLPClassifier", {}, "unknown estimator 'MLPClassifier'"),
        (
            "RandomForestClassifier",
            {"n_estimator": 5},
            "RandomForestClassifier has no hyperparameter 'n_estimator': did you mean "
            "'n_estimators'?",
        ),
        ("LinearRegression", {"alpha": 1.0}, "LinearRegression has no hyperparameter 'alpha'"),
        (
            "RandomForestClassifier",
            {"n_estimators": "ten"},
            "The 'n_estimators' parameter of RandomForestClassifier must be an int",
        ),
        (
            "RandomForestClassifier",
            {"max_depth": -1},
            "The 'max_depth' parameter of RandomForestClassifier must be an int in the range",
        ),
        ("SVC", {"kernel": "cubic"}, "The 'kernel' parameter of SVC must be"),
        ("LogisticRegression", {"C": "big"}, "The 'C' parameter of LogisticRegression"),
        ("KNeighborsClassifier", {"n_neighbors": 500}, "could not be trained on builtin dataset"),
    ],
)
def test_bad_estimators_and_hyperparameters_are_named(
    estimator: str,
    hyperparameters: dict[str, Any],
    expected: str,
    iris_spec: Callable[..., dict[str, Any]],
    output_root: Path,
) -> None:
    spec = iris_spec(estimator=estimator, hyperparameters=hyperparameters)
    with pytest.raises(TrainingError) as error:
        train(spec, output_root, "m")
    assert expected in str(error.value)
    assert not output_root.exists()


def test_a_mixed_csv_model_is_a_pipeline_ending_in_the_estimator(
    write_csv: Callable[..., Path], mixed_csv: str, output_root: Path
) -> None:
    path = write_csv(mixed_csv)
    spec = {
        "dataset": {"csv": {"path": str(path), "targetColumn": "label"}},
        "estimator": "HistGradientBoostingClassifier",
        "hyperparameters": {"max_iter": 5},
    }
    summary = train(spec, output_root, "m")
    model = joblib.load(Path(summary["artifactPath"]) / "model.joblib")
    assert isinstance(model, Pipeline)
    assert type(model[-1]).__name__ == "HistGradientBoostingClassifier"


def test_mape_is_a_fraction_left_out_where_a_target_is_zero() -> None:
    """A model that always answers 110 is 10% off targets of 100, and no percentage off 0."""
    model = DummyRegressor(strategy="constant", constant=110.0).fit([[0.0]], [110.0])
    rows = np.zeros((2, 1))
    assert evaluate.score(model, rows, np.array([100.0, 100.0]), "regression")["mape"] == (
        pytest.approx(0.1)
    )
    assert "mape" not in evaluate.score(model, rows, np.array([100.0, 0.0]), "regression")
