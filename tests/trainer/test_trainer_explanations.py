"""What the trainer keeps for explanations: a background of complete training rows drawn with
the run's seed, and each feature's global importance (mean |SHAP value| on the held-out rows)
computed by the server's own explainers, which the model card then shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from modelops_server import explaining
from modelops_server.runtime import select
from modelops_trainer import evaluate, explanations
from modelops_trainer.training import train
from sklearn.datasets import load_iris


def _trained(
    tmp_path: Path, estimator: str, dataset: dict[str, Any], **hyperparameters: Any
) -> dict[str, Any]:
    spec = {
        "dataset": dataset,
        "estimator": estimator,
        "hyperparameters": hyperparameters,
        "testSize": 0.25,
        "randomSeed": 5,
    }
    summary = train(spec, tmp_path, "model")
    metadata: dict[str, Any] = json.loads(
        (Path(summary["artifactPath"]) / "metadata.json").read_text()
    )
    return metadata


def test_the_background_is_training_rows_and_the_importance_their_mean_absolute_shap(
    tmp_path: Path,
) -> None:
    metadata = _trained(tmp_path, "RandomForestClassifier", {"builtin": "iris"}, n_estimators=20)
    data, target = load_iris(return_X_y=True)
    x_train, x_test, _, _ = evaluate.split(data, target, "classification", 0.25, 5)

    rows = metadata["background"]["rows"]
    assert len(rows) == explaining.BACKGROUND_ROWS
    training_rows = {tuple(row) for row in x_train.tolist()}
    assert all(tuple(row) in training_rows for row in rows)
    # Drawn with the run's seed: the same rows again.
    again = _trained(
        tmp_path / "again", "RandomForestClassifier", {"builtin": "iris"}, n_estimators=20
    )
    assert again["background"] == metadata["background"]

    importance = metadata["importance"]
    assert (importance["method"], importance["units"], importance["rows"]) == (
        "tree-shap",
        "probability",
        len(x_test),
    )
    model = joblib.load(tmp_path / "default" / "model" / metadata["version"] / "model.joblib")
    explained = select(model, True, compile_models=True).predictor.explain(x_test, None)
    expected = np.abs(explained.contributions).mean(axis=0).sum(axis=1)
    names = [feature["name"] for feature in metadata["features"]]
    assert importance["features"] == pytest.approx(dict(zip(names, expected.tolist(), strict=True)))
    assert list(importance["features"].values()) == sorted(
        importance["features"].values(), reverse=True
    )


def test_rows_with_a_missing_value_are_left_out_of_the_background(tmp_path: Path) -> None:
    csv = tmp_path / "fruit.csv"
    lines = ["size,colour,label"] + [
        f"{'' if i % 4 == 0 else 1 + i % 9},{('red', 'green', '')[i % 3]},{'big' if i % 9 > 4 else 'small'}"
        for i in range(80)
    ]
    csv.write_text("\n".join(lines) + "\n")

    metadata = _trained(
        tmp_path, "RandomForestClassifier", {"csv": {"path": str(csv), "targetColumn": "label"}}
    )

    rows = metadata["background"]["rows"]
    assert rows and all(type(size) is float and colour in ("red", "green") for size, colour in rows)
    # A Pipeline: explained by the model-agnostic explainer, every coalition of two features.
    assert metadata["importance"]["method"] == "exact-shapley"
    # All 20 held-out rows: fewer than the most a model-agnostic importance takes.
    assert metadata["importance"]["rows"] == 20 < explanations.AGNOSTIC_IMPORTANCE_ROWS


def test_a_model_without_an_explainer_has_no_importance(tmp_path: Path) -> None:
    metadata = _trained(tmp_path, "SVC", {"builtin": "iris"}, probability=False)

    assert "importance" not in metadata
    assert len(metadata["background"]["rows"]) == explaining.BACKGROUND_ROWS


def test_the_chart_is_a_bar_per_feature_largest_first() -> None:
    importance = {
        "method": "tree-shap",
        "rows": 38,
        "units": "probability",
        "features": {"petal <width>": 0.6, "sepal": 0.1},
    }

    chart = explanations.bar_chart(importance)

    assert chart.startswith("<svg") and chart.count("<rect") == 2
    assert "petal &lt;width&gt;" in chart and chart.index("petal") < chart.index("sepal")
