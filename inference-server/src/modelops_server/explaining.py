"""Model-agnostic explanations: Shapley values of any model's outputs, with the features a
coalition leaves out taken from a background sample of the training rows (the trainer keeps
it in metadata.json). A coalition's value is the mean output over the background rows with the
coalition's features set to the explained row's: the interventional Shapley values of the
shap library's ExactExplainer with an Independent masker, which the tests hold these to.

The cost is bounded per explained row: EVALUATIONS_PER_ROW model outputs at most. Where every
coalition fits (2^features x background rows), the values are exact; beyond, they are
estimated from random orderings of the features (each ordering and its reverse: antithetic
pairs), seeded, so a row is explained the same every time, and the contributions still add up
exactly to the output minus the base value. Tree ensembles and linear models are explained
exactly and faster elsewhere (compiled.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .prediction import Explanation, Units

# Outputs the model computes per explained row, at most: 16 384 rows of a 100-tree forest or an
# SVC take about 50 ms. The trainer keeps at most BACKGROUND_ROWS training rows.
EVALUATIONS_PER_ROW = 16384
BACKGROUND_ROWS = 50
# Explained rows per request for these models: each costs up to EVALUATIONS_PER_ROW outputs.
MAX_EXPLAINED_ROWS = 100
ORDERINGS_SEED = 0

Outputs = Callable[[np.ndarray], np.ndarray]


def shapley(
    outputs: Outputs, rows: np.ndarray, background: np.ndarray, units: Units
) -> Explanation:
    """The (rows, features, outputs) Shapley values of `outputs` (rows in, (rows, outputs) out)
    for each of `rows`, and their base value: the mean output over the background."""
    width = rows.shape[1]
    base_values = np.asarray(outputs(background), dtype=np.float64).mean(axis=0)
    if 2**width * len(background) <= EVALUATIONS_PER_ROW:
        exact = [_exact(outputs, row, background) for row in rows]
        return Explanation(np.stack(exact), base_values, units, "exact-shapley")
    orderings = _orderings(width, len(background))
    sampled = [_sampled(outputs, row, background, orderings) for row in rows]
    return Explanation(np.stack(sampled), base_values, units, "sampled-shapley")


def _hybrids(row: np.ndarray, background: np.ndarray, coalitions: np.ndarray) -> np.ndarray:
    """(coalitions x background rows, features): each background row with each coalition's
    features (a boolean (coalitions, features) array) set to `row`'s."""
    hybrid = np.where(coalitions[:, None, :], row[None, None, :], background[None, :, :])
    return hybrid.reshape(-1, row.shape[0])


def _values(
    outputs: Outputs, row: np.ndarray, background: np.ndarray, coalitions: np.ndarray
) -> np.ndarray:
    """(coalitions, outputs): each coalition's mean output over the background."""
    answered = np.asarray(outputs(_hybrids(row, background, coalitions)), dtype=np.float64)
    return answered.reshape(len(coalitions), len(background), -1).mean(axis=1)


def _exact(outputs: Outputs, row: np.ndarray, background: np.ndarray) -> np.ndarray:
    width = row.shape[0]
    members = np.arange(2**width)
    coalitions = ((members[:, None] >> np.arange(width)) & 1).astype(bool)
    values = _values(outputs, row, background, coalitions)
    sizes = coalitions.sum(axis=1)
    # A coalition of s features without i weighs s! (n - s - 1)! / n!.
    weight = np.array(
        [
            math.factorial(s) * math.factorial(width - s - 1) / math.factorial(width)
            for s in range(width)
        ]
    )
    contributions = np.empty((width, values.shape[1]))
    for feature in range(width):
        without = members[~coalitions[:, feature]]
        gains = values[without | (1 << feature)] - values[without]
        contributions[feature] = weight[sizes[without]] @ gains
    return contributions


def _orderings(width: int, background_rows: int) -> np.ndarray:
    """Orderings of the features, in pairs (one and its reverse), as many as the budget pays
    for: each costs (features + 1) x background rows outputs."""
    pairs = max(1, EVALUATIONS_PER_ROW // ((width + 1) * background_rows) // 2)
    random = np.random.default_rng(ORDERINGS_SEED)
    forward = np.array([random.permutation(width) for _ in range(pairs)])
    return np.concatenate([forward, forward[:, ::-1]])


def _sampled(
    outputs: Outputs, row: np.ndarray, background: np.ndarray, orderings: np.ndarray
) -> np.ndarray:
    """The mean over `orderings` of each feature's gain as it joins the features before it."""
    count, width = orderings.shape
    # Per ordering, the coalitions of its first 0, 1, ..., width features.
    steps = np.zeros((count, width + 1, width), dtype=bool)
    for k in range(1, width + 1):
        steps[np.arange(count), k:, orderings[:, k - 1]] = True
    values = _values(outputs, row, background, steps.reshape(-1, width))
    values = values.reshape(count, width + 1, -1)
    gains = values[:, 1:] - values[:, :-1]
    contributions = np.zeros((width, values.shape[2]))
    for ordering, gain in zip(orderings, gains, strict=True):
        contributions[ordering] += gain
    return contributions / count
