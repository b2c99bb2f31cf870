"""What every runtime answers with."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Prediction(NamedTuple):
    # A NamedTuple, not a frozen dataclass: made for every request, in a third of the time.
    # Classification: indices into the model's classes; regression: the predicted values.
    outputs: np.ndarray
    # (rows, classes) for a classifier that has probabilities, else None.
    probabilities: np.ndarray | None
