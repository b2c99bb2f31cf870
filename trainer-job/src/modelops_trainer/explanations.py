"""What the trainer keeps for explanations: a sample of training rows the server explains
against (metadata.json `background`), and each feature's global importance, its mean |SHAP
value| on the held-out rows (metadata.json `importance`, the model card, and MLflow as
importance.json and a bar chart, importance.svg). Computed by the server's own explainers, so
training reports what serving will answer."""

from __future__ import annotations

import logging
from html import escape
from typing import Any

import numpy as np
from modelops_server import artifact, explaining, runtime
from modelops_server.errors import NotExplainable

log = logging.getLogger(__name__)

# Held-out rows a model-agnostic importance is computed on (each costs up to
# explaining.EVALUATIONS_PER_ROW predictions); tree ensembles and linear models take them all.
AGNOSTIC_IMPORTANCE_ROWS = 50


def background(
    matrix: np.ndarray, features: list[dict[str, Any]], random_seed: int
) -> dict[str, Any] | None:
    """Up to explaining.BACKGROUND_ROWS training rows without a missing value, drawn with the
    run's seed, as metadata.json keeps them; None when every row misses a value."""
    numeric = [feature["type"] == "numeric" for feature in features]
    # A missing value is NaN in either kind of column (features.encode).
    complete = [
        index
        for index, row in enumerate(matrix)
        if not any(isinstance(value, float) and np.isnan(value) for value in row)
    ]
    if not complete:
        log.info("every training row misses a value: no background for explanations")
        return None
    chosen = np.random.default_rng(random_seed).choice(
        complete, size=min(explaining.BACKGROUND_ROWS, len(complete)), replace=False
    )
    rows = [
        [
            float(value) if is_number else str(value)
            for is_number, value in zip(numeric, matrix[index], strict=True)
        ]
        for index in sorted(chosen)
    ]
    return {"rows": rows}


def importance(
    model: Any,
    classification: bool,
    held_out: np.ndarray,
    features: list[dict[str, Any]],
    kept: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Each feature's mean |SHAP value| over the held-out rows, summed over the outputs (as
    shap's bar chart stacks classes), largest first; None where the model has no explainer."""
    described = tuple(artifact.feature(raw) for raw in features)
    rows_against = None if kept is None else artifact.background_rows(kept, described)
    chosen = runtime.select(model, classification, compile_models=True)
    rows = held_out if chosen.name == runtime.COMPILED else held_out[:AGNOSTIC_IMPORTANCE_ROWS]
    try:
        explanation = chosen.predictor.explain(rows, rows_against)
    except NotExplainable as exc:
        log.info("no feature importance: %s", exc)
        return None
    mean = np.abs(explanation.contributions).mean(axis=0).sum(axis=1)
    order = np.argsort(-mean, kind="stable")
    return {
        "method": explanation.method,
        "rows": len(rows),
        "units": explanation.units,
        "features": {features[i]["name"]: float(mean[i]) for i in order},
    }


def bar_chart(importance: dict[str, Any]) -> str:
    """importance.svg: a bar per feature, largest first, for MLflow's artifact view."""
    bar_height, label_width, bar_width = 22, 220, 360
    features = list(importance["features"].items())
    largest = max((value for _, value in features), default=0.0) or 1.0
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 90}" '
        f'height="{bar_height * (len(features) + 1) + 10}" font-family="sans-serif" font-size="13">',
        f'<text x="4" y="16">mean |SHAP value| ({escape(importance["units"])}, '
        f"{escape(importance['method'])}, {importance['rows']} held-out rows)</text>",
    ]
    for index, (name, value) in enumerate(features, start=1):
        y = index * bar_height + 6
        width = bar_width * value / largest
        lines += [
            f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">{escape(name)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{width:.1f}" height="{bar_height - 6}" fill="#2f6fdb"/>',
            f'<text x="{label_width + width + 6:.1f}" y="{y + 14}">{value:.4g}</text>',
        ]
    return "\n".join([*lines, "</svg>"]) + "\n"
