"""Same inputs, same version and metrics; any input that changes the model, a new version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modelops_trainer import train

Spec = dict[str, Any]


@pytest.mark.parametrize(
    "spec",
    [
        {
            "dataset": {"builtin": "wine"},
            "estimator": "HistGradientBoostingClassifier",
            "hyperparameters": {"max_iter": 20},
        },
        {
            "dataset": {"builtin": "diabetes"},
            "estimator": "RandomForestRegressor",
            "hyperparameters": {"n_estimators": 5, "max_features": 0.5},
        },
    ],
    ids=["wine", "diabetes"],
)
def test_same_inputs_give_the_same_version_metrics_and_model(spec: Spec, tmp_path: Path) -> None:
    first = train(spec, tmp_path / "one", "m")
    second = train(spec, tmp_path / "two", "m")
    assert first["version"] == second["version"]
    assert first["metrics"] == second["metrics"]
    assert first["sha256"] == second["sha256"]


def test_csv_data_is_reproducible_too(
    write_csv: Callable[..., Path], mixed_csv: str, tmp_path: Path
) -> None:
    spec = {
        "dataset": {"csv": {"path": str(write_csv(mixed_csv)), "targetColumn": "label"}},
        "estimator": "ExtraTreesClassifier",
        "hyperparameters": {"n_estimators": 5},
    }
    first, second = (train(spec, tmp_path / run, "m") for run in ("one", "two"))
    assert (first["version"], first["metrics"]) == (second["version"], second["metrics"])


def test_defaults_and_operator_keys_do_not_change_the_version(
    iris_spec: Callable[..., Spec], tmp_path: Path
) -> None:
    bare = {"dataset": {"builtin": "iris"}, "estimator": "DecisionTreeClassifier"}
    # As the operator passes it: CRD defaults filled in, operator-only keys along.
    from_operator = bare | {
        "hyperparameters": {},
        "testSize": 0.2,
        "randomSeed": 42,
        "qualityGate": {"metric": "accuracy", "threshold": 0.9},
        "resources": {"limits": {"memory": "1Gi"}},
        "backoffLimit": 2,
        "activeDeadlineSeconds": 1800,
    }
    assert (
        train(bare, tmp_path / "a", "m")["version"]
        == train(from_operator, tmp_path / "b", "m")["version"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"randomSeed": 8},
        {"testSize": 0.3},
        {"hyperparameters": {"n_estimators": 6}},
        {"estimator": "ExtraTreesClassifier"},
        {"dataset": {"builtin": "wine"}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_inputs_that_change_the_model_change_the_version(
    change: Spec, iris_spec: Callable[..., Spec], output_root: Path
) -> None:
    assert (
        train(iris_spec(), output_root, "m")["version"]
        != train(iris_spec(**change), output_root, "m")["version"]
    )


def test_changed_data_changes_the_version(
    write_csv: Callable[..., Path], numeric_csv: str, tmp_path: Path
) -> None:
    spec = {
        "dataset": {"csv": {"path": str(write_csv(numeric_csv)), "targetColumn": "y"}},
        "estimator": "LinearRegression",
    }
    before = train(spec, tmp_path / "models", "m")
    write_csv(numeric_csv + "5,5,10.5\n")
    after = train(spec, tmp_path / "models", "m")
    assert before["version"] != after["version"]
