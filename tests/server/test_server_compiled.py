"""The server answers exactly what scikit-learn answers, for every estimator the trainer
offers: the compiled ones (tree ensembles, linear models), from the trainer's model.npz and
compiled at load alike, and the ones served by scikit-learn itself, which say so in their
metadata and log."""

from __future__ import annotations

import logging
from collections.abc import Callable

import joblib
import numpy as np
import pytest
from conftest import Artifact, Server
from modelops_trainer.estimators import ESTIMATORS, task_of
from sklearn import datasets

COMPILED = {
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "LogisticRegression",
    "DecisionTreeClassifier",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "LinearRegression",
    "Ridge",
    "DecisionTreeRegressor",
}
# Multiclass, binary, regression.
DATASETS = {
    "iris": datasets.load_iris,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}
CASES = [
    (estimator, dataset)
    for estimator in ESTIMATORS
    for dataset in (
        ("iris", "breast_cancer") if task_of(estimator) == "classification" else ("diabetes",)
    )
]


def _inputs(dataset: str) -> np.ndarray:
    """The whole dataset (its held-out rows among them) and as many random rows, spread twice
    as wide as the data, so they land beside the training points and on split thresholds."""
    data = DATASETS[dataset]().data
    rng = np.random.default_rng(11)
    noise = rng.normal(data.mean(axis=0), 2 * data.std(axis=0), size=data.shape)
    # Some exact training values too: they sit right next to the thresholds.
    noise[::3] = data[rng.integers(0, len(data), len(noise[::3]))]
    return np.vstack([data, noise])


def _check_same_answers(server: Server, model: object, rows: np.ndarray) -> None:
    body = server.predict({"instances": rows.tolist()}).json()
    expected = model.predict(rows)  # type: ignore[attr-defined]
    if server.artifact.metadata["task"] == "classification":
        assert body["predictions"] == [str(label) for label in expected]
        # Bit for bit (JSON round-trips float64 exactly).
        np.testing.assert_array_equal(body["probabilities"], model.predict_proba(rows))  # type: ignore[attr-defined]
    else:
        np.testing.assert_array_equal(body["predictions"], expected)


@pytest.mark.parametrize(("estimator", "dataset"), CASES, ids=[f"{e}-{d}" for e, d in CASES])
def test_predictions_and_probabilities_are_scikit_learns(
    serve: Callable[..., Server],
    trained: Callable[..., Artifact],
    estimator: str,
    dataset: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    artifact = trained(estimator, dataset=dataset)
    with caplog.at_level(logging.INFO, logger="modelops_server"):
        server = serve(artifact)
    model = joblib.load(artifact.directory / "model.joblib")
    rows = _inputs(dataset)

    _check_same_answers(server, model, rows)
    # One row at a time takes other paths through numpy (no pairwise sums, no batching).
    for row in rows[::37]:
        _check_same_answers(server, model, row[None, :])

    parameters = server.client.get(f"/v2/models/{artifact.name}").json()["parameters"]
    if estimator in COMPILED:
        assert parameters["runtime"] == "compiled"
        assert parameters["runtime_reason"] == ""
        assert "model.npz, not unpickled" in caplog.text
        # Compiled at load from the unpickled estimator: the same answers.
        unpickled = serve(artifact, model_sha256=artifact.metadata["sha256"])
        _check_same_answers(unpickled, model, rows)
    else:
        assert parameters["runtime"] == "scikit-learn"
        assert f"{estimator} has no compiled form" in parameters["runtime_reason"]
        assert f"serving {estimator} with scikit-learn, not compiled" in caplog.text


def test_compilation_can_be_switched_off(
    serve: Callable[..., Server], iris_forest: Artifact
) -> None:
    server = serve(iris_forest, compile=False)
    model = joblib.load(iris_forest.directory / "model.joblib")

    parameters = server.client.get(f"/v2/models/{iris_forest.name}").json()["parameters"]

    assert parameters["runtime"] == "scikit-learn"
    assert "MODELOPS_COMPILE=false" in parameters["runtime_reason"]
    _check_same_answers(server, model, _inputs("iris"))


def test_categorical_features_are_served_through_the_saved_pipeline(
    serve: Callable[..., Server], fruit_forest: Artifact
) -> None:
    artifact = fruit_forest
    server = serve(artifact)
    model = joblib.load(artifact.directory / "model.joblib")
    rows = [[2.0, "red"], [7.0, "blue"], [3.0, "purple"]]

    body = server.predict({"instances": [*rows, {"size": 2, "colour": "green"}]}).json()

    expected = model.predict(np.array([*rows, [2, "green"]], dtype=object))
    assert body["predictions"] == list(expected)
    parameters = server.client.get(f"/v2/models/{artifact.name}").json()["parameters"]
    assert parameters["runtime"] == "scikit-learn"
    assert (
        "a Pipeline (preprocessing of categorical or missing values)"
        in parameters["runtime_reason"]
    )
    per_feature = {
        "inputs": [
            {"name": "size", "shape": [1], "datatype": "FP64", "data": [2.0]},
            {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
        ]
    }
    assert server.infer(per_feature).json()["outputs"][0]["data"] == [body["predictions"][0]]
    wrong = server.predict({"instances": [[2.0, 3.0]]})
    assert wrong.status_code == 400
    assert "'colour': 3.0 is not a string" in wrong.json()["error"]
