"""What every runtime answers with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prediction:
    # Classification: indices into the model's classes; regression: the predicted values.
    outputs: np.ndarray
    # (rows, classes) for a classifier that has probabilities, else None.
    probabilities: np.ndarray | None
