"""Compiled forms of tree ensembles and linear models: the fitted parameters as flat numpy
arrays, evaluated for all rows and trees at once.

scikit-learn spends milliseconds per call on input validation and per-tree Python overhead
(a 100-tree forest: ~4 ms for one row); here one row costs tens of microseconds. The answers
are scikit-learn's to the last bit where the arithmetic allows it: the same input dtype, the
same comparisons, leaf values summed in the same order, the estimator's own link functions.
tests/server/test_server_compiled.py compares them for every supported estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
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
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.extmath import softmax

from .errors import InvalidInput
from .prediction import Prediction

AVERAGED_TREES = (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
)
# Losses whose link is the identity, so the raw score is the prediction.
_IDENTITY_LINK_LOSSES = {"squared_error", "absolute_error", "huber", "quantile"}


class NotCompilable(Exception):
    """The estimator has no compiled form; the message says why."""


# The smallest float64 that becomes infinity as float32 (FLT_MAX plus half its last step).
_FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


@dataclass(frozen=True)
class Trees:
    """Every node of every tree in flat arrays, addressed by slot: node n is slots 2n and
    2n + 1, so the step to a child is one addition (`slot + goes_right`) and one lookup. A
    leaf's children are the leaf itself, so all rows can take `depth` steps without checks."""

    # Per slot: the slot of the child (left at 2n, right at 2n + 1).
    children: np.ndarray
    # Per slot (both slots of a node alike): the node's split feature and threshold.
    feature: np.ndarray
    threshold: np.ndarray
    # (slots, outputs): what the tree adds to each output when the walk ends there.
    value: np.ndarray
    # The root's slot of each tree.
    roots: np.ndarray
    depth: int
    # scikit-learn's trees compare float32 inputs, HistGradientBoosting float64.
    dtype: type[np.floating[Any]]

    def total(self, matrix: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(rows, outputs): `start` plus the leaf values of every tree, added in tree order
        as scikit-learn does, so the sums round the same way."""
        rows, width = matrix.shape
        if self.dtype is np.float32:
            if not np.abs(matrix).max() < _FLOAT32_OVERFLOW:
                # scikit-learn refuses such values rather than predict with infinity.
                raise InvalidInput("a value is too large for this model (beyond float32's range)")
            matrix = matrix.astype(np.float32)
        x = matrix.ravel().astype(np.float64, copy=False)
        feature, threshold, children = self.feature, self.threshold, self.children
        if rows == 1:
            # The common case, and a third of the numpy calls per step without the row offsets.
            slot = self.roots
            for _ in range(self.depth):
                slot = children.take(slot + (x.take(feature.take(slot)) > threshold.take(slot)))
            slot = slot[:, None]
        else:
            row_start = np.arange(0, rows * width, width)
            slot = np.repeat(self.roots[:, None], rows, axis=1)
            for _ in range(self.depth):
                goes_right = x.take(row_start + feature.take(slot)) > threshold.take(slot)
                slot = children.take(slot + goes_right)
        terms = np.empty((len(self.roots) + 1, rows, self.value.shape[1]))
        terms[0] = start
        self.value.take(slot, axis=0, out=terms[1:])
        # cumsum adds strictly in order; sum() may add pairwise, which rounds differently.
        return np.cumsum(terms, axis=0)[-1]


class _Concatenation:
    """Builds `Trees` out of per-tree arrays (children as node indices, -1 under a leaf)."""

    def __init__(self, outputs: int, dtype: type[np.floating[Any]]) -> None:
        self._outputs = outputs
        self._dtype = dtype
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._nodes = 0
        self._depth = 0

    def add(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        depth: int,
    ) -> None:
        count = len(left)
        own = np.arange(count) + self._nodes
        leaf = left < 0
        children = np.empty((count, 2), dtype=np.intp)
        children[:, 0] = 2 * np.where(leaf, own, left + self._nodes)
        children[:, 1] = 2 * np.where(leaf, own, right + self._nodes)
        self._parts.append(
            (
                children.ravel(),
                np.repeat(np.where(leaf, 0, feature).astype(np.intp), 2),
                np.repeat(np.where(leaf, 0.0, threshold).astype(np.float64), 2),
                np.repeat(value.reshape(count, self._outputs).astype(np.float64), 2, axis=0),
                np.array([2 * self._nodes], dtype=np.intp),
            )
        )
        self._nodes += count
        self._depth = max(self._depth, depth)

    def build(self) -> Trees:
        children, feature, threshold, value, roots = (
            np.concatenate(part) for part in zip(*self._parts, strict=True)
        )
        return Trees(children, feature, threshold, value, roots, self._depth, self._dtype)


def _sklearn_trees(
    trees: list[Any], outputs: int, slots: list[int] | None = None, scale: float = 1.0
) -> Trees:
    """Trees from scikit-learn's `tree_` objects. With `slots`, tree i adds its single value
    to output slots[i] (gradient boosting's one tree per class), scaled by `scale`."""
    concatenation = _Concatenation(outputs, np.float32)
    for i, tree in enumerate(trees):
        if slots is None:
            value = tree.value[:, 0, :outputs]
        else:
            value = np.zeros((tree.node_count, outputs))
            # The same product scikit-learn computes per prediction, computed once.
            value[:, slots[i]] = scale * tree.value[:, 0, 0]
        concatenation.add(
            tree.children_left,
            tree.children_right,
            tree.feature,
            tree.threshold,
            value,
            tree.max_depth,
        )
    return concatenation.build()


class AveragedTrees:
    """Random and extra-trees forests and single trees: the mean of the trees' leaf values
    (class fractions or regression values)."""

    def __init__(self, estimator: Any, classification: bool) -> None:
        trees = getattr(estimator, "estimators_", [estimator])
        outputs = len(estimator.classes_) if classification else 1
        self._trees = _sklearn_trees([t.tree_ for t in trees], outputs)
        self._count = len(trees)
        self._start = np.zeros(outputs)
        self._classification = classification

    def predict(self, matrix: np.ndarray) -> Prediction:
        mean = self._trees.total(matrix, self._start)
        mean /= self._count
        if self._classification:
            return Prediction(mean.argmax(axis=1), mean)
        return Prediction(mean[:, 0], None)


class BoostedTrees:
    """Gradient boosting (classic and histogram): a start score plus the sum of the trees'
    values, through the estimator's link for classifiers."""

    def __init__(
        self,
        trees: Trees,
        start: np.ndarray,
        estimator: Any,
        classification: bool,
        binary_ties_to_positive: bool,
    ) -> None:
        self._trees = trees
        self._start = start
        self._classification = classification
        self._loss = estimator._loss
        self._ties_to_positive = binary_ties_to_positive

    def predict(self, matrix: np.ndarray) -> Prediction:
        raw = self._trees.total(matrix, self._start)
        if not self._classification:
            return Prediction(raw[:, 0], None)
        # The estimator's own inverse link (sigmoid or softmax), bit for bit.
        probabilities = self._loss.predict_proba(raw)
        if raw.shape[1] == 1:
            score = raw[:, 0]
            positive = score >= 0 if self._ties_to_positive else score > 0
            return Prediction(positive.astype(np.intp), probabilities)
        return Prediction(raw.argmax(axis=1), probabilities)


class Linear:
    """Linear and logistic regression: X @ coef.T + intercept, as scikit-learn computes it."""

    def __init__(self, estimator: Any, classification: bool) -> None:
        self._coef_t = np.ascontiguousarray(np.asarray(estimator.coef_, dtype=np.float64).T)
        self._intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        self._classification = classification

    def predict(self, matrix: np.ndarray) -> Prediction:
        decision = matrix @ self._coef_t + self._intercept
        if not self._classification:
            return Prediction(decision.ravel(), None)
        if decision.ndim == 1 or decision.shape[1] == 1:
            score = decision.ravel()
            positive = expit(score)
            return Prediction(
                (score > 0).astype(np.intp), np.stack([1 - positive, positive], axis=1)
            )
        return Prediction(decision.argmax(axis=1), softmax(decision.copy(), copy=False))


def compile_estimator(estimator: Any) -> Any:
    """The compiled predictor for `estimator`; NotCompilable when it has none."""
    name = type(estimator).__name__
    if isinstance(estimator, Pipeline):
        raise NotCompilable(
            "a Pipeline (preprocessing of categorical or missing values) is not compiled"
        )
    classification = hasattr(estimator, "classes_")
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise NotCompilable(f"{name} has several outputs; only single-output models are compiled")
    if isinstance(estimator, AVERAGED_TREES):
        return AveragedTrees(estimator, classification)
    if isinstance(estimator, (GradientBoostingClassifier, GradientBoostingRegressor)):
        return _gradient_boosting(estimator, classification)
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return _hist_gradient_boosting(estimator, classification)
    if isinstance(estimator, (LinearRegression, Ridge)):
        return Linear(estimator, classification=False)
    if isinstance(estimator, LogisticRegression):
        _check_multinomial(estimator)
        return Linear(estimator, classification=True)
    raise NotCompilable(f"{name} has no compiled form (tree ensembles and linear models do)")


def _gradient_boosting(estimator: Any, classification: bool) -> BoostedTrees:
    if estimator.loss not in {"log_loss", *_IDENTITY_LINK_LOSSES}:
        raise NotCompilable(f"loss {estimator.loss!r} is not compiled")
    if estimator.init_ != "zero" and not hasattr(estimator.init_, "strategy"):
        # A custom init estimator's prediction depends on the row; the default one's does not.
        raise NotCompilable("a custom init estimator is not compiled")
    stages = estimator.estimators_
    per_stage = stages.shape[1]
    # The default init predicts the same for every row, so one row gives everyone's start.
    start = estimator._raw_predict_init(np.zeros((1, estimator.n_features_in_), np.float32))[0]
    trees = _sklearn_trees(
        [tree.tree_ for stage in stages for tree in stage],
        per_stage,
        slots=[k for _ in range(len(stages)) for k in range(per_stage)],
        scale=estimator.learning_rate,
    )
    return BoostedTrees(trees, start, estimator, classification, binary_ties_to_positive=True)


def _hist_gradient_boosting(estimator: Any, classification: bool) -> BoostedTrees:
    if not classification and estimator.loss not in _IDENTITY_LINK_LOSSES:
        raise NotCompilable(f"loss {estimator.loss!r} is not compiled")
    if (
        getattr(estimator, "_preprocessor", None) is not None
        or estimator.is_categorical_ is not None
    ):
        raise NotCompilable("categorical features are not compiled")
    per_iteration = estimator.n_trees_per_iteration_
    concatenation = _Concatenation(per_iteration, np.float64)
    for iteration in estimator._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            value = np.zeros((len(nodes), per_iteration))
            value[:, k] = np.where(leaf, nodes["value"], 0.0)
            concatenation.add(
                np.where(leaf, -1, nodes["left"].astype(np.intp)),
                nodes["right"].astype(np.intp),
                nodes["feature_idx"],
                nodes["num_threshold"],
                value,
                int(nodes["depth"].max()),
            )
    start = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
    return BoostedTrees(
        concatenation.build(), start, estimator, classification, binary_ties_to_positive=False
    )


def _check_multinomial(estimator: Any) -> None:
    multi_class = getattr(estimator, "multi_class", "deprecated")
    ovr = multi_class == "ovr" or (multi_class == "auto" and estimator.solver == "liblinear")
    if ovr and len(estimator.classes_) > 2:
        raise NotCompilable("one-vs-rest logistic regression is not compiled")
