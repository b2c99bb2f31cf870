"""How a model's answers are computed: a compiled form of the fitted parameters (`compiled.py`)
where one exists, otherwise scikit-learn itself. Both answer with a `Prediction`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import explaining
from .errors import InvalidInput, NotExplainable, PayloadTooLarge
from .prediction import Explanation, Prediction

COMPILED = "compiled"
SCIKIT_LEARN = "scikit-learn"


class Predictor(Protocol):
    def predict(self, matrix: np.ndarray) -> Prediction: ...

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation: ...


@dataclass(frozen=True)
class Runtime:
    predictor: Predictor
    name: str
    # Why the model is not compiled; empty when it is.
    reason: str
    has_probabilities: bool


class ScikitLearnPredictor:
    """The estimator as it was fitted: any model, at scikit-learn's speed."""

    def __init__(self, estimator: Any, classification: bool) -> None:
        self._estimator = estimator
        self._classes = np.asarray(estimator.classes_) if classification else None
        # SVC(probability=False) has the attribute but raises: hasattr calls the property.
        self.has_probabilities = classification and hasattr(estimator, "predict_proba")
        self._labels_are_argmax = self.has_probabilities and _predicts_argmax_of_proba(estimator)

    def predict(self, matrix: np.ndarray) -> Prediction:
        try:
            probabilities = (
                self._estimator.predict_proba(matrix) if self.has_probabilities else None
            )
            if self._labels_are_argmax:
                # What `predict` computes from the same probabilities: one pass, not two.
                assert probabilities is not None
                return Prediction(probabilities.argmax(axis=1), probabilities)
            outputs = self._estimator.predict(matrix)
        except ValueError as exc:
            # scikit-learn's own input checks, e.g. a value too large for float32.
            raise InvalidInput(f"the model rejected the input: {exc}") from None
        if self._classes is not None:
            # `predict` answers with labels; the rest of the server works with class indices.
            # Not argmax(probabilities) in general: for SVC they can disagree, and `predict` is
            # the answer.
            outputs = np.searchsorted(self._classes, outputs)
        return Prediction(outputs, probabilities)

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation:
        """Model-agnostic Shapley values (explaining.py) of the class probabilities, or of the
        predicted value."""
        name = type(self._estimator).__name__
        if background is None:
            raise NotExplainable(
                f"{name} is explained against training rows, and its metadata.json keeps none "
                "(trained before explanations, or provided without metadata): train it again "
                "to explain it"
            )
        if self._classes is not None and not self.has_probabilities:
            raise NotExplainable(
                f"{name} gives no class probabilities to explain (SVC needs probability: true)"
            )
        if len(matrix) > explaining.MAX_EXPLAINED_ROWS:
            raise PayloadTooLarge(
                f"{len(matrix)} rows to explain; a model scikit-learn serves is explained "
                f"{explaining.MAX_EXPLAINED_ROWS} rows at a time (each takes up to "
                f"{explaining.EVALUATIONS_PER_ROW} predictions): split it"
            )
        outputs = (
            self._estimator.predict_proba
            if self._classes is not None
            else lambda rows: self._estimator.predict(rows).reshape(-1, 1)
        )
        try:
            return explaining.shapley(
                outputs, matrix, background, "probability" if self._classes is not None else "value"
            )
        except ValueError as exc:
            raise InvalidInput(f"the model rejected the input: {exc}") from None


def _predicts_argmax_of_proba(estimator: Any) -> bool:
    """Whether the estimator's (or a Pipeline's last step's) `predict` is, in scikit-learn's
    code, the argmax of what `predict_proba` returns: single trees and forests."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    # ExtraTreeClassifier is a DecisionTreeClassifier.
    trees = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier)
    return isinstance(final, trees) and final.n_outputs_ == 1


def select(estimator: Any, classification: bool, compile_models: bool) -> Runtime:
    """The compiled form of `estimator` when there is one (and `compile_models`), else
    scikit-learn, with the reason."""
    # Imports scikit-learn, which an estimator's unpickling has imported already.
    from .compiling import NotCompilable, compile_estimator

    if not compile_models:
        reason = "compilation is switched off (MODELOPS_COMPILE=false)"
    else:
        try:
            return Runtime(compile_estimator(estimator), COMPILED, "", classification)
        except NotCompilable as exc:
            reason = str(exc)
    predictor = ScikitLearnPredictor(estimator, classification)
    return Runtime(predictor, SCIKIT_LEARN, reason, predictor.has_probabilities)
