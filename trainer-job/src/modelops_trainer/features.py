"""Turning the feature columns into what the estimator is fitted on, and describing them.

All-numeric data without gaps is fitted as is, so the saved model is the bare estimator (the
inference server has a fast path for those). Otherwise the model is a Pipeline whose first step
encodes categorical columns and fills missing values, so the server can pass raw rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoding:
    # metadata.json `features`: the raw input columns, in the order the model takes them.
    features: list[dict[str, Any]]
    matrix: np.ndarray
    preprocessor: ColumnTransformer | None


def encode(frame: pd.DataFrame) -> Encoding:
    features = [_describe(str(name), frame[name]) for name in frame.columns]
    numeric = [i for i, feature in enumerate(features) if feature["type"] == "numeric"]
    categorical = [i for i, feature in enumerate(features) if feature["type"] == "categorical"]
    missing = frame.isna().to_numpy()
    if not categorical and not missing.any():
        return Encoding(features, frame.to_numpy(dtype=float), None)

    if missing.any():
        log.info(
            "%d missing value(s) in feature column(s) %s: numeric ones are filled with the column "
            "median, categorical ones encoded as no category",
            int(missing.sum()),
            ", ".join(repr(str(name)) for name in frame.columns[missing.any(axis=0)]),
        )
    matrix = np.empty(frame.shape, dtype=object)
    for i, name in enumerate(frame.columns):
        column = frame[name]
        values = column.to_numpy(dtype=float) if i in numeric else column.astype(str).to_numpy()
        matrix[:, i] = np.where(column.isna().to_numpy(), np.nan, values)
    steps: list[tuple[str, Any, list[int]]] = []
    if numeric:
        steps.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        encoder = OneHotEncoder(
            categories=[features[i]["categories"] for i in categorical],
            # Unseen categories and missing values become all zeros rather than an error.
            handle_unknown="ignore",
            # Dense, because HistGradientBoosting does not take sparse input.
            sparse_output=False,
        )
        steps.append(("categorical", encoder, categorical))
    return Encoding(features, matrix, ColumnTransformer(steps))


def _describe(name: str, column: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(column):
        # The range seen in training: the bounds of the model's page and of generated load.
        seen = column.dropna()
        bounds = {"min": float(seen.min()), "max": float(seen.max())} if len(seen) else {}
        return {"name": name, "type": "numeric", **bounds}
    categories = sorted(column.dropna().astype(str).unique())
    return {"name": name, "type": "categorical", "categories": categories}
