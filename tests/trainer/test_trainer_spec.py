"""The training spec: camelCase keys, operator-only keys accepted, typos refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from modelops_trainer import TrainingError
from modelops_trainer.spec import parse_spec

BASE: dict[str, Any] = {"dataset": {"builtin": "iris"}, "estimator": "RandomForestClassifier"}


def test_operator_keys_are_accepted_and_left_out_of_the_model_inputs() -> None:
    spec = parse_spec(
        BASE
        | {
            "qualityGate": {"metric": "accuracy", "threshold": 0.9},
            "resources": {"requests": {"cpu": "500m"}},
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
        }
    )
    assert set(spec.model_inputs()) == {
        "dataset",
        "estimator",
        "hyperparameters",
        "testSize",
        "randomSeed",
    }


def test_defaults_are_the_crds() -> None:
    inputs = parse_spec(BASE).model_inputs()
    assert inputs == BASE | {"hyperparameters": {}, "testSize": 0.2, "randomSeed": 42}


def test_csv_source_keeps_only_what_is_given() -> None:
    dataset = {"csv": {"path": "/data/x.csv", "targetColumn": "y"}}
    assert parse_spec(BASE | {"dataset": dataset}).model_inputs()["dataset"] == dataset


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            BASE | {"testsize": 0.3},
            "testsize: unknown key: did you mean 'testSize'? the allowed keys are dataset,",
        ),
        (BASE | {"test_size": 0.3}, "test_size: unknown key: did you mean 'testSize'?"),
        (
            BASE | {"dataset": {"csv": {"path": "/x.csv", "targetColum": "y"}}},
            "dataset.csv.targetColum: unknown key: did you mean 'targetColumn'? "
            "the allowed keys are url, path, targetColumn",
        ),
        (BASE | {"dataset": {"builtn": "iris"}}, "dataset.builtn: unknown key"),
        (BASE | {"dataset": {}}, "give exactly one of builtin"),
        (
            BASE | {"dataset": {"builtin": "iris", "csv": {"path": "/x", "targetColumn": "y"}}},
            "give exactly one of builtin",
        ),
        (
            BASE | {"dataset": {"csv": {"path": "/x", "url": "http://h/x", "targetColumn": "y"}}},
            "give exactly one of url",
        ),
        (
            BASE | {"dataset": {"csv": {"url": "ftp://h/x.csv", "targetColumn": "y"}}},
            "must start with http:// or https://",
        ),
        (BASE | {"dataset": {"csv": {"path": "/x.csv"}}}, "targetColumn: required key is missing"),
        ({"dataset": {"builtin": "iris"}}, "estimator: required key is missing"),
        (BASE | {"testSize": 1}, "testSize: Input should be less than 1"),
        (BASE | {"testSize": 0}, "testSize: Input should be greater than 0"),
        (BASE | {"testSize": "0.2"}, "testSize: Input should be a valid number"),
        (BASE | {"randomSeed": -1}, "randomSeed: Input should be greater than or equal to 0"),
        (BASE | {"randomSeed": 2**32}, "randomSeed: Input should be less than or equal to"),
        (BASE | {"randomSeed": 4.5}, "randomSeed: Input should be a valid integer"),
        (BASE | {"hyperparameters": [1]}, "hyperparameters: Input should be a valid dictionary"),
    ],
)
def test_bad_specs_name_the_key(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(TrainingError) as error:
        parse_spec(raw)
    message = str(error.value)
    assert message.startswith("invalid training spec: ")
    assert expected in message
    assert "\n" not in message


def test_a_spec_must_be_a_mapping() -> None:
    with pytest.raises(TrainingError, match="must be a mapping of keys to values, got list"):
        parse_spec([BASE])
