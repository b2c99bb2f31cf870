"""What every runtime answers with, and explains with."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np


class Prediction(NamedTuple):
    # A NamedTuple, not a frozen dataclass: made for every request, in a third of the time.
    # Classification: indices into the model's classes; regression: the predicted values.
    outputs: np.ndarray
    # (rows, classes) for a classifier that has probabilities, else None.
    probabilities: np.ndarray | None


# What an explanation's contributions add up to: class probabilities, the log-odds (logits)
# a boosted or logistic classifier turns into probabilities, or a regressor's prediction.
Units = Literal["probability", "logit", "value"]
# How: exact TreeSHAP (compiled trees), exact for a linear model, exact Shapley values over every
# coalition, or estimated from sampled orderings of the features (explaining.py).
Method = Literal["tree-shap", "linear", "exact-shapley", "sampled-shapley"]


class Explanation(NamedTuple):
    # (rows, features, outputs): each feature's contribution to each output, in `units`.
    contributions: np.ndarray
    # (outputs,): the output with no feature known (the mean over the training data); a row's
    # contributions add up from it to the row's output.
    base_values: np.ndarray
    units: Units
    method: Method
