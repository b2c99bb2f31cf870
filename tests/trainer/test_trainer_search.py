"""training.search: an Optuna search over the spec's space, scored by cross-validation on the
training split, whose best values are refitted and recorded; the same seed gives the same model;
a time limit ends it early and says so; a bad space fails before any data is read, in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelops_trainer import search
from modelops_trainer.errors import TrainingError
from modelops_trainer.spec import SearchSpec
from modelops_trainer.training import train
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

TREE_SPACE = {
    "max_depth": {"type": "Int", "low": 1, "high": 6},
    "criterion": {"type": "Categorical", "choices": ["gini", "entropy"]},
    "min_samples_leaf": {"type": "Float", "low": 0.01, "high": 0.2, "log": True},
}


def searched_tree(**search_overrides: Any) -> dict[str, Any]:
    return {
        "dataset": {"builtin": "iris"},
        "estimator": "DecisionTreeClassifier",
        "randomSeed": 5,
        "search": {"trials": 8, "parameters": TREE_SPACE} | search_overrides,
    }


def test_the_best_trial_is_refitted_and_recorded(tmp_path: Path) -> None:
    summary = train(searched_tree(), tmp_path, "iris")
    found = summary["search"]
    assert found["metric"] == "accuracy"
    assert (found["trials"], found["failedTrials"], found["folds"]) == (8, 0, 3)
    assert "stopped" not in found
    assert set(found["parameters"]) == set(TREE_SPACE)
    assert 0.5 < found["score"] <= 1
    metadata = json.loads((Path(summary["artifactPath"]) / "metadata.json").read_text())
    # The model is built with the best values (and the seed): the card shows what it is.
    assert metadata["hyperparameters"] == found["parameters"] | {"random_state": 5}
    assert metadata["search"] == found


def test_the_same_seed_searches_to_the_same_model(tmp_path: Path) -> None:
    first = train(searched_tree(), tmp_path / "a", "iris")
    second = train(searched_tree(), tmp_path / "b", "iris")
    assert first["search"] == second["search"]
    assert (first["version"], first["sha256"]) == (second["version"], second["sha256"])
    other_seed = train(searched_tree() | {"randomSeed": 6}, tmp_path / "c", "iris")
    assert other_seed["version"] != first["version"]


def test_the_search_is_part_of_the_version(tmp_path: Path) -> None:
    plain = train(
        {"dataset": {"builtin": "iris"}, "estimator": "DecisionTreeClassifier", "randomSeed": 5},
        tmp_path,
        "iris",
    )
    assert plain["version"] != train(searched_tree(), tmp_path, "iris")["version"]
    assert "search" not in plain


def test_an_error_metric_is_minimized_and_reported_positive() -> None:
    data = load_diabetes()
    space = SearchSpec.model_validate(
        {
            "trials": 6,
            "parameters": {"alpha": {"type": "Float", "low": 1e-3, "high": 100, "log": True}},
        }
    )
    outcome = search.run(
        space,
        "regression",
        "rmse",
        lambda chosen: Ridge(**chosen),
        data.data,
        data.target,
        seed=1,
        time_limit=(60, "a minute"),
    )
    scores = [trial.score for trial in outcome.trials]
    assert all(score is not None and score > 0 for score in scores)
    assert outcome.best_score == min(score for score in scores if score is not None)
    assert outcome.best_parameters == next(
        trial.parameters for trial in outcome.trials if trial.score == outcome.best_score
    )


@pytest.mark.parametrize("dataset", ["breast_cancer", "iris"])
def test_roc_auc_is_searched_for_two_classes_and_more(dataset: str, tmp_path: Path) -> None:
    spec = searched_tree(metric="roc_auc", trials=3) | {"dataset": {"builtin": dataset}}
    found = train(spec, tmp_path, dataset)["search"]
    assert found["metric"] == "roc_auc"
    assert 0.5 < found["score"] <= 1


def test_the_gate_metric_is_the_default(tmp_path: Path) -> None:
    spec = searched_tree(trials=2) | {"qualityGate": {"metric": "f1_macro", "threshold": 0.5}}
    assert train(spec, tmp_path, "iris")["search"]["metric"] == "f1_macro"


def test_a_time_limit_stops_the_search_and_says_so(tmp_path: Path) -> None:
    found = train(searched_tree(trials=1000, timeoutSeconds=1), tmp_path, "iris")["search"]
    assert 1 <= found["trials"] < 1000
    assert found["stopped"].startswith(f"stopped after {found['trials']} of 1000 trials")
    assert "search.timeoutSeconds: 1" in found["stopped"]


def test_the_jobs_deadline_bounds_a_search_without_a_limit(tmp_path: Path) -> None:
    spec = searched_tree(trials=1000) | {"activeDeadlineSeconds": 2}
    found = train(spec, tmp_path, "iris")["search"]
    assert found["trials"] < 1000
    assert "half the Job's deadline (activeDeadlineSeconds: 2)" in found["stopped"]


def test_trials_the_data_refuses_are_counted_and_the_rest_win(tmp_path: Path) -> None:
    # 112 training rows, two thirds of them in each fold's fit: 100 neighbours fail there.
    spec = {
        "dataset": {"builtin": "iris"},
        "estimator": "KNeighborsClassifier",
        "testSize": 0.25,
        "search": {
            "trials": 6,
            "parameters": {"n_neighbors": {"type": "Categorical", "choices": [3, 100]}},
        },
    }
    found = train(spec, tmp_path, "iris")["search"]
    assert found["parameters"] == {"n_neighbors": 3}
    assert found["failedTrials"] >= 1


def test_a_search_where_every_trial_fails_fails_the_run(tmp_path: Path) -> None:
    spec = {
        "dataset": {"builtin": "iris"},
        "estimator": "KNeighborsClassifier",
        "search": {
            "trials": 2,
            "parameters": {"n_neighbors": {"type": "Int", "low": 100, "high": 110}},
        },
    }
    with pytest.raises(TrainingError, match=r"every one of the search's 2 trials failed \("):
        train(spec, tmp_path, "iris")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"hyperparameters": {"max_depth": 3}},
            "hyperparameter 'max_depth' is both fixed (hyperparameters) and searched",
        ),
        (
            {"search": {"parameters": {"max_dept": {"type": "Int", "low": 1, "high": 3}}}},
            "search.parameters.max_dept: DecisionTreeClassifier has no hyperparameter 'max_dept': "
            "did you mean 'max_depth'?",
        ),
        (
            {"search": {"parameters": {"max_depth": {"type": "Int", "low": 0, "high": 3}}}},
            "search.parameters.max_depth: bad hyperparameter: The 'max_depth' parameter",
        ),
        (
            {
                "search": {
                    "parameters": {"criterion": {"type": "Categorical", "choices": ["gini", "gin"]}}
                }
            },
            "search.parameters.criterion: bad hyperparameter: The 'criterion' parameter",
        ),
        (
            {"search": {"metric": "rmse", "parameters": TREE_SPACE}},
            "search.metric 'rmse' does not suit a classification model",
        ),
        (
            {"search": {"folds": 41, "parameters": TREE_SPACE}},
            "search.folds is 41 but a class has 40 training rows",
        ),
        (
            {"search": {"parameters": {"max_depth": {"type": "Int", "lo": 1, "high": 3}}}},
            "search.parameters.max_depth.lo: unknown key: did you mean 'low'?",
        ),
        (
            {"search": {"parameters": {"max_depth": {"type": "Int", "low": 1.5, "high": 3}}}},
            "an Int parameter takes whole numbers for low, high and step",
        ),
    ],
)
def test_a_bad_search_fails_in_words(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(TrainingError) as failed:
        train(searched_tree() | change, tmp_path, "iris")
    assert message in str(failed.value)


def test_the_two_objectives_sample_searches_each_for_its_own_metric(tmp_path: Path) -> None:
    sample = Path(__file__).parents[2] / "deploy/samples/mlflow/breast-cancer-search.yaml"
    found = {
        document["metadata"]["name"]: train(
            document["spec"]["training"], tmp_path, document["metadata"]["name"]
        )["search"]
        for document in yaml.safe_load_all(sample.read_text())
    }
    assert found["cancer-accuracy"]["metric"] == "accuracy"
    assert found["cancer-roc-auc"]["metric"] == "roc_auc"
    assert found["cancer-accuracy"]["trials"] == found["cancer-roc-auc"]["trials"] == 10
