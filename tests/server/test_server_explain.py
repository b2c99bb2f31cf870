"""Explanations: every compiled tree ensemble's contributions are the shap library's
TreeExplainer's (path-dependent TreeSHAP) to 1e-9, over /explain and the Open Inference
Protocol's explain route alike, from the trainer's model.npz and compiled at load; they add up
to the model's output; a model without an explainer gets a 501 that says why."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import shap
import tritonclient.http as triton_http
from conftest import Artifact, Server
from modelops_server import artifact as server_artifact
from modelops_server import compiled, explaining
from modelops_server._kernels import Walker
from modelops_server.compiling import compile_estimator
from modelops_server.errors import NotExplainable
from modelops_trainer.estimators import task_of
from sklearn import datasets
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from test_server_compiled import DATASETS, _inputs

TREES = [
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "DecisionTreeClassifier",
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "DecisionTreeRegressor",
]
CASES = [
    (estimator, dataset)
    for estimator in TREES
    for dataset in (
        ("iris", "breast_cancer") if task_of(estimator) == "classification" else ("diabetes",)
    )
]
TOLERANCE = 1e-9


def _shap(model: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """shap's TreeExplainer's (rows, features, outputs) values and (outputs,) expected value."""
    if isinstance(model, GradientBoostingClassifier) and len(model.classes_) > 2:
        return _shap_per_class(model, rows)
    explainer = shap.TreeExplainer(model)
    values = np.asarray(explainer.shap_values(rows, check_additivity=False))
    if values.ndim == 2:
        values = values[:, :, None]
    return values, np.ravel(explainer.expected_value)


def _shap_per_class(
    model: GradientBoostingClassifier, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """shap's TreeExplainer takes no multiclass GradientBoostingClassifier ("only supported for
    binary classification"): each class's trees go to it as a model of their own, in its
    dictionary form, scaled by the learning rate as its binary loader scales them."""
    start = model._raw_predict_init(np.zeros((1, model.n_features_in_), np.float32))[0]
    # The rows as scikit-learn's trees compare them; the dictionary form reads float64.
    rows32 = rows.astype(np.float32).astype(np.float64)
    values, expected = [], []
    for k in range(len(model.classes_)):
        trees = [
            {
                "children_left": tree.tree_.children_left,
                "children_right": tree.tree_.children_right,
                "children_default": tree.tree_.children_left,
                "features": tree.tree_.feature,
                "thresholds": tree.tree_.threshold,
                "values": tree.tree_.value[:, 0, :] * model.learning_rate,
                "node_sample_weight": tree.tree_.weighted_n_node_samples,
            }
            for tree in model.estimators_[:, k]
        ]
        explainer = shap.TreeExplainer({"trees": trees, "base_offset": start[k]})
        values.append(explainer.shap_values(rows32, check_additivity=False))
        expected.append(float(np.ravel(explainer.expected_value)[0]))
    return np.stack(values, axis=-1), np.array(expected)


def _raw_output(model: Any, rows: np.ndarray) -> np.ndarray:
    """(rows, outputs): what the contributions add up to, as scikit-learn computes it."""
    if hasattr(model, "predict_proba") and not hasattr(model, "decision_function"):
        return np.asarray(model.predict_proba(rows))
    if hasattr(model, "decision_function"):
        raw = np.asarray(model.decision_function(rows))
        return raw.reshape(len(rows), -1)
    return np.asarray(model.predict(rows)).reshape(-1, 1)


def _explain(server: Server, rows: np.ndarray) -> dict[str, Any]:
    response = server.client.post("/explain", json={"instances": rows.tolist()})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("estimator", "dataset"), CASES, ids=[f"{e}-{d}" for e, d in CASES])
def test_contributions_are_shaps_tree_explainers(
    serve: Callable[..., Server],
    trained: Callable[..., Artifact],
    estimator: str,
    dataset: str,
) -> None:
    artifact = trained(estimator, dataset=dataset)
    model = joblib.load(artifact.directory / "model.joblib")
    # Every third row of the data and of the rows beside it, to keep shap's share short.
    rows = _inputs(dataset)[::3]
    expected, expected_base = _shap(model, rows)

    # From the trainer's model.npz, and compiled at load from the unpickled estimator.
    for server in (serve(artifact), serve(artifact, model_sha256=artifact.metadata["sha256"])):
        body = _explain(server, rows)

        assert np.abs(np.array(body["contributions"]) - expected).max() <= TOLERANCE
        assert np.abs(np.array(body["base_values"]) - expected_base).max() <= TOLERANCE
        assert body["features"] == artifact.features
        assert (
            body["predictions"]
            == server.predict({"instances": rows.tolist()}).json()["predictions"]
        )
    # Local accuracy: the base value plus a row's contributions is the model's output.
    total = np.array(body["base_values"]) + np.array(body["contributions"]).sum(axis=1)
    np.testing.assert_allclose(total, _raw_output(model, rows), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("estimator", "dataset", "units", "outputs"),
    [
        ("RandomForestClassifier", "iris", "probability", ["setosa", "versicolor", "virginica"]),
        ("GradientBoostingClassifier", "breast_cancer", "logit", ["malignant"]),
        ("HistGradientBoostingClassifier", "iris", "logit", ["setosa", "versicolor", "virginica"]),
        ("GradientBoostingRegressor", "diabetes", "value", ["prediction"]),
    ],
    ids=["forest", "binary-boosting", "multiclass-boosting", "regressor"],
)
def test_the_answer_names_its_units_and_what_each_column_explains(
    serve: Callable[..., Server],
    trained: Callable[..., Artifact],
    estimator: str,
    dataset: str,
    units: str,
    outputs: list[str],
) -> None:
    server = serve(trained(estimator, dataset=dataset))
    rows = DATASETS[dataset]().data[:2]

    body = _explain(server, rows)

    assert (body["units"], body["outputs"]) == (units, outputs)
    assert np.shape(body["contributions"]) == (2, rows.shape[1], len(outputs))
    assert len(body["base_values"]) == len(outputs)


def test_the_open_inference_protocols_explain_route_answers_the_same_tensors(
    iris_server: Server,
) -> None:
    name, version = iris_server.artifact.name, iris_server.artifact.version
    rows = DATASETS["iris"]().data[:5]
    simple = _explain(iris_server, rows)
    request = {
        "id": "why",
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ],
    }

    for path in (f"/v2/models/{name}/explain", f"/v2/models/{name}/versions/{version}/explain"):
        response = iris_server.client.post(path, json=request)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["model_name"], body["model_version"], body["id"]) == (name, version, "why")
        assert body["parameters"] == {
            key: simple[key] for key in ("method", "units", "outputs", "features")
        }
        tensors = {output["name"]: output for output in body["outputs"]}
        assert tensors["contributions"]["shape"] == [5, 4, 3]
        assert tensors["contributions"]["datatype"] == "FP64"
        np.testing.assert_array_equal(
            np.reshape(tensors["contributions"]["data"], (5, 4, 3)), simple["contributions"]
        )
        assert tensors["base_values"] == {
            "name": "base_values",
            "shape": [3],
            "datatype": "FP64",
            "data": simple["base_values"],
        }

    # One output asked for, as binary data: Triton's own client reads it.
    response = iris_server.client.post(
        f"/v2/models/{name}/explain",
        json=request
        | {"outputs": [{"name": "contributions", "parameters": {"binary_data": True}}]},
    )
    header_length = int(response.headers["Inference-Header-Content-Length"])
    result = triton_http.InferenceServerClient.parse_response_body(
        response.content, header_length=header_length
    )
    np.testing.assert_array_equal(result.as_numpy("contributions"), simple["contributions"])
    assert result.as_numpy("base_values") is None

    unknown = iris_server.client.post(
        f"/v2/models/{name}/explain", json=request | {"outputs": [{"name": "predict"}]}
    )
    assert unknown.status_code == 400
    assert "'contributions', 'base_values'" in unknown.json()["error"]
    elsewhere = iris_server.client.post("/v2/models/wine/explain", json=request)
    assert elsewhere.status_code == 404


def test_bad_rows_get_the_errors_predict_gives(iris_server: Server) -> None:
    for body in ({"rows": [[1, 2, 3, 4]]}, {"instances": [[1, 2, 3]]}, {"instances": [[1e39] * 4]}):
        explained = iris_server.client.post("/explain", json=body)
        predicted = iris_server.predict(body)
        assert (explained.status_code, predicted.status_code) == (400, 400)
        if "instances" in body:
            assert explained.json() == predicted.json()


def _background(artifact: Artifact) -> np.ndarray:
    """The training rows the server explains against, as it reads them."""
    metadata = artifact.metadata
    features = tuple(server_artifact.feature(raw) for raw in metadata["features"])
    rows = server_artifact.background_rows(metadata["background"], features)
    assert rows is not None
    return rows


@pytest.mark.parametrize(
    ("estimator", "dataset"),
    [
        ("LogisticRegression", "iris"),
        ("LogisticRegression", "breast_cancer"),
        ("Ridge", "diabetes"),
        ("LinearRegression", "diabetes"),
    ],
)
def test_a_linear_models_contributions_are_shaps_linear_explainers(
    serve: Callable[..., Server], trained: Callable[..., Artifact], estimator: str, dataset: str
) -> None:
    artifact = trained(estimator, dataset=dataset)
    model = joblib.load(artifact.directory / "model.joblib")
    rows = _inputs(dataset)[::5]
    explainer = shap.LinearExplainer(model, _background(artifact))
    expected = np.asarray(explainer.shap_values(rows))
    expected = expected if expected.ndim == 3 else expected[:, :, None]

    body = _explain(serve(artifact), rows)

    assert body["method"] == "linear"
    assert np.abs(np.array(body["contributions"]) - expected).max() <= TOLERANCE
    assert (
        np.abs(np.array(body["base_values"]) - np.ravel(explainer.expected_value)).max()
        <= TOLERANCE
    )


def test_a_model_scikit_learn_serves_gets_exact_shapley_values_against_the_training_rows(
    serve: Callable[..., Server], trained: Callable[..., Artifact]
) -> None:
    """Four features: every coalition is evaluated, as shap's ExactExplainer does."""
    artifact = trained("SVC", dataset="iris")
    model = joblib.load(artifact.directory / "model.joblib")
    background = _background(artifact)
    rows = _inputs("iris")[::40]
    explainer = shap.explainers.Exact(
        model.predict_proba, shap.maskers.Independent(background, max_samples=len(background))
    )
    expected = explainer(rows)

    body = _explain(serve(artifact), rows)

    assert (body["method"], body["units"]) == ("exact-shapley", "probability")
    assert np.abs(np.array(body["contributions"]) - expected.values).max() <= TOLERANCE
    assert np.abs(np.array(body["base_values"]) - expected.base_values[0]).max() <= TOLERANCE


def test_a_pipeline_is_explained_over_its_raw_features(
    serve: Callable[..., Server], fruit_forest: Artifact
) -> None:
    """A numeric and a categorical feature, through the saved Pipeline: each coalition's value
    is the mean probability over the training rows with its features set to the row's."""
    model = joblib.load(fruit_forest.directory / "model.joblib")
    background = _background(fruit_forest)
    row = {"size": 3, "colour": "red"}

    server = serve(fruit_forest)
    response = server.client.post("/explain", json={"instances": [row]})
    assert response.status_code == 200, response.text
    body = response.json()

    def value(size: bool, colour: bool) -> np.ndarray:
        hybrid = background.copy()
        if size:
            hybrid[:, 0] = 3.0
        if colour:
            hybrid[:, 1] = "red"
        return np.asarray(model.predict_proba(hybrid)).mean(axis=0)

    # Two features: each contribution is the mean of its gain alone and its gain last.
    size = (
        (value(True, False) - value(False, False)) + (value(True, True) - value(False, True))
    ) / 2
    colour = (
        (value(False, True) - value(False, False)) + (value(True, True) - value(True, False))
    ) / 2
    assert body["method"] == "exact-shapley" and body["features"] == ["size", "colour"]
    np.testing.assert_allclose(body["contributions"][0], [size, colour], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(body["base_values"], value(False, False), rtol=0, atol=TOLERANCE)
    assert body["predictions"] == server.predict({"instances": [row]}).json()["predictions"]


def test_many_features_are_explained_from_sampled_orderings_that_still_add_up(
    serve: Callable[..., Server], trained: Callable[..., Artifact]
) -> None:
    """Thirteen features are 8192 coalitions: beyond the budget, so the values come from
    orderings of the features, seeded, and add up exactly; here they stay near the exact ones."""
    artifact = trained("SVC", dataset="wine")
    model = joblib.load(artifact.directory / "model.joblib")
    background = _background(artifact)
    rows = datasets.load_wine().data[:2]
    server = serve(artifact)

    body = _explain(server, rows)

    assert body["method"] == "sampled-shapley"
    total = np.array(body["base_values"]) + np.array(body["contributions"]).sum(axis=1)
    np.testing.assert_allclose(total, model.predict_proba(rows), rtol=0, atol=TOLERANCE)
    exact = shap.explainers.Exact(
        model.predict_proba, shap.maskers.Independent(background, max_samples=len(background))
    )(rows[:1])
    assert np.abs(np.array(body["contributions"][0]) - exact.values[0]).max() < 0.01
    assert _explain(server, rows)["contributions"] == body["contributions"]


def test_a_model_without_an_explainer_gets_a_501_that_says_why(
    serve: Callable[..., Server], trained: Callable[..., Artifact], tmp_path: Path
) -> None:
    rows = {"instances": DATASETS["iris"]().data[:1].tolist()}
    without_probabilities = serve(trained("SVC", dataset="iris", probability=False))
    # A version from a trainer before explanations: no training rows in its metadata.json.
    older = trained("SVC", dataset="iris").copy_to(tmp_path / "older")
    metadata = json.loads((older.directory / "metadata.json").read_text())
    del metadata["background"]
    (older.directory / "metadata.json").write_text(json.dumps(metadata))
    without_background = serve(older)

    for server, reason in (
        (without_probabilities, "SVC gives no class probabilities to explain"),
        (without_background, "its metadata.json keeps none"),
    ):
        response = server.client.post("/explain", json=rows)
        assert response.status_code == 501
        assert reason in response.json()["error"]
        # Predictions go on as before.
        assert server.predict(rows).status_code == 200


def test_a_model_scikit_learn_serves_is_explained_a_bounded_number_of_rows_at_a_time(
    serve: Callable[..., Server], trained: Callable[..., Artifact]
) -> None:
    server = serve(trained("SVC", dataset="iris"))
    rows = np.tile(DATASETS["iris"]().data[:1], (explaining.MAX_EXPLAINED_ROWS + 1, 1))

    response = server.client.post("/explain", json={"instances": rows.tolist()})

    assert response.status_code == 413
    assert f"explained {explaining.MAX_EXPLAINED_ROWS} rows at a time" in response.json()["error"]


def _arrays(artifact: Artifact) -> dict[str, np.ndarray]:
    with np.load(artifact.directory / "model.npz") as archive:
        return {name: archive[name] for name in archive.files}


def test_a_format_1_file_is_served_and_not_explained(iris_forest: Artifact) -> None:
    """Files from a trainer before explanations have no covers: they still serve."""
    arrays = _arrays(iris_forest)
    del arrays["trees.cover"]
    arrays["format_version"] = np.array(1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    model = compiled.from_bytes(buffer.getvalue())
    rows = DATASETS["iris"]().data

    forest = joblib.load(iris_forest.directory / "model.joblib")
    np.testing.assert_array_equal(
        model.predictor.predict(rows).probabilities, forest.predict_proba(rows)
    )
    with pytest.raises(NotExplainable, match="format 1 file"):
        model.predictor.explain(rows, None)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda a: a["trees.cover"].__setitem__(5, -1.0), "a cover is negative or not finite"),
        (lambda a: a.__setitem__("trees.depth", np.array(1)), "the nodes do not make trees"),
        # The first root's two children are one node, its larger subtree: shared nodes could
        # make a walk through every path take 2^depth steps.
        (
            lambda a: a["trees.children"].__setitem__(0, a["trees.children"][1]),
            "the nodes do not make trees",
        ),
    ],
    ids=["negative-cover", "deeper-than-said", "shared-node"],
)
def test_covers_and_shapes_that_do_not_make_trees_are_refused_at_load(
    iris_forest: Artifact, corrupt: Callable[[dict[str, np.ndarray]], None], message: str
) -> None:
    arrays = _arrays(iris_forest)
    corrupt(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)

    with pytest.raises(compiled.CompiledFileError, match=f"do not fit together: {message}"):
        compiled.from_bytes(buffer.getvalue())


def test_the_compiled_file_keeps_the_covers_explanations_need(iris_forest: Artifact) -> None:
    arrays = _arrays(iris_forest)
    metadata = json.loads((iris_forest.directory / "metadata.json").read_text())
    forest = joblib.load(iris_forest.directory / "model.joblib")

    assert int(arrays["format_version"]) == compiled.FORMAT_VERSION == 2
    assert metadata["compiled"]["formatVersion"] == 2
    assert (
        metadata["compiled"]["sha256"]
        == hashlib.sha256((iris_forest.directory / "model.npz").read_bytes()).hexdigest()
    )
    # Per slot, both slots of a node alike: the training weight that reached it.
    root_covers = arrays["trees.cover"][arrays["trees.roots"]]
    assert root_covers.tolist() == [t.tree_.weighted_n_node_samples[0] for t in forest.estimators_]
    explained = compile_estimator(forest).explain(DATASETS["iris"]().data[:3], None)
    assert explained.contributions.shape == (3, 4, 3)


def _walkers(trees: compiled.Trees) -> tuple[Walker, Walker, int]:
    """Two walkers of the same trees: one explaining by the recursion alone, one from the leaf
    tables where they fit; and how many trees have tables."""
    arrays = (trees.children, trees.feature, trees.threshold, trees.value, trees.roots)
    walkers = [
        Walker(*arrays, trees.depth, trees.dtype is np.float32, trees.cover) for _ in range(2)
    ]
    for walker in walkers:
        walker.expectation(np.zeros(trees.value.shape[1]), 1.0)
    return walkers[0], walkers[1], walkers[1].tabulate()


@pytest.mark.parametrize(
    ("model", "dataset", "tabled"),
    [
        (RandomForestClassifier(n_estimators=100, max_depth=5, random_state=0), "iris", "all"),
        (HistGradientBoostingClassifier(max_iter=20, random_state=0), "iris", "all"),
        # Grown to the end: most trees' tables would not fit, and the recursion explains them.
        (RandomForestRegressor(n_estimators=20, random_state=0), "diabetes", "some"),
    ],
    ids=["shallow-forest", "boosting", "deep-forest"],
)
def test_the_leaf_tables_and_the_recursion_give_the_same_contributions(
    model: Any, dataset: str, tabled: str
) -> None:
    """Shallow trees are explained from tables made at load, deep ones by the recursion
    (_kernels.c): the same arithmetic, which agrees to rounding."""
    data = DATASETS[dataset]()
    trees = compile_estimator(model.fit(data.data, data.target)).trees  # type: ignore[attr-defined]
    recursion, tables, count = _walkers(trees)
    rows = _inputs(dataset)
    by_recursion = np.zeros((len(rows), rows.shape[1], trees.value.shape[1]))
    by_tables = np.zeros_like(by_recursion)

    recursion.explain(rows, by_recursion, 1.0)
    tables.explain(rows, by_tables, 1.0)

    trees_count = len(trees.roots)
    assert count == trees_count if tabled == "all" else 0 < count < trees_count
    assert np.abs(by_tables - by_recursion).max() <= 1e-12 * max(1.0, np.abs(by_recursion).max())
