"""Compiling scikit-learn estimators into the predictors of `compiled.py`: what the trainer
writes as `model.npz`, and what the server does itself for a model that came without one."""

from __future__ import annotations

from typing import Any

import numpy as np
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

from .compiled import AveragedTrees, BoostedTrees, Compiled, CompiledModel, Linear, Link, Trees

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


class _Concatenation:
    """Builds `Trees` out of per-tree arrays (children as node indices, -1 under a leaf, and
    each node's cover)."""

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
        cover: np.ndarray,
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
                np.repeat(cover.astype(np.float64), 2),
            )
        )
        self._nodes += count
        self._depth = max(self._depth, depth)

    def build(self) -> Trees:
        children, feature, threshold, value, roots, cover = (
            np.concatenate(part) for part in zip(*self._parts, strict=True)
        )
        return Trees(children, feature, threshold, value, roots, self._depth, self._dtype, cover)


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
            tree.weighted_n_node_samples,
            tree.max_depth,
        )
    return concatenation.build()


def compile_estimator(estimator: Any) -> Compiled:
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
        return _averaged_trees(estimator, classification)
    if isinstance(estimator, (GradientBoostingClassifier, GradientBoostingRegressor)):
        return _gradient_boosting(estimator, classification)
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        return _hist_gradient_boosting(estimator, classification)
    if isinstance(estimator, (LinearRegression, Ridge)):
        return _linear(estimator, classification=False)
    if isinstance(estimator, LogisticRegression):
        _check_multinomial(estimator)
        return _linear(estimator, classification=True)
    raise NotCompilable(f"{name} has no compiled form (tree ensembles and linear models do)")


def compile_model(estimator: Any) -> CompiledModel:
    """`estimator`'s compiled form with its input width and class count, as model.npz holds
    it; NotCompilable when it has none."""
    classes = getattr(estimator, "classes_", None)
    return CompiledModel(
        compile_estimator(estimator),
        int(estimator.n_features_in_),
        0 if classes is None else len(classes),
    )


def _averaged_trees(estimator: Any, classification: bool) -> AveragedTrees:
    trees = getattr(estimator, "estimators_", [estimator])
    outputs = len(estimator.classes_) if classification else 1
    return AveragedTrees(
        _sklearn_trees([t.tree_ for t in trees], outputs), len(trees), classification
    )


def _linear(estimator: Any, classification: bool) -> Linear:
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    # The shapes scikit-learn multiplies, so the same BLAS routine rounds the same way.
    coef_t = np.ascontiguousarray(coef.T)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    link = _classifier_link(coef.shape[0]) if classification else "identity"
    return Linear(coef_t, intercept, link)


def _classifier_link(scores: int) -> Link:
    """One score per row (binary): the logistic function; one per class: softmax. The only
    links of the losses compiled (log loss)."""
    return "logistic" if scores == 1 else "softmax"


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
    link = _classifier_link(per_stage) if classification else "identity"
    return BoostedTrees(trees, np.asarray(start, np.float64), link, ties_to_positive=True)


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
                # What shap's TreeExplainer takes as these trees' cover.
                nodes["count"],
                int(nodes["depth"].max()),
            )
    start = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
    link = _classifier_link(per_iteration) if classification else "identity"
    return BoostedTrees(concatenation.build(), start, link, ties_to_positive=False)


def _check_multinomial(estimator: Any) -> None:
    multi_class = getattr(estimator, "multi_class", "deprecated")
    ovr = multi_class == "ovr" or (multi_class == "auto" and estimator.solver == "liblinear")
    if ovr and len(estimator.classes_) > 2:
        raise NotCompilable("one-vs-rest logistic regression is not compiled")
