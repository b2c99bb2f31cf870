"""Turning a request's rows or columns into the matrix the model takes, and refusing anything
it cannot take with a message that says what and where. Protocol-independent: the simple API
(rows) and the Open Inference Protocol (tensors) both end here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from ._kernels import read_numbers
from .artifact import Feature
from .errors import InvalidInput, PayloadTooLarge


def _finite_numbers(values: list[Any]) -> np.ndarray | None:
    """`values` as float64, or None unless every one is a finite int or float (not a boolean,
    a numeric string or null, which numpy would convert)."""
    numbers = np.empty(len(values))
    return numbers if read_numbers(values, numbers) < 0 else None


class Features:
    """The model's input columns and the checks every batch passes."""

    def __init__(self, features: Sequence[Feature], max_rows: int) -> None:
        self.names = tuple(f.name for f in features)
        self._name_set = frozenset(self.names)
        self._categorical = frozenset(i for i, f in enumerate(features) if f.type == "categorical")
        self.numeric_only = not self._categorical
        self._max_rows = max_rows

    def from_rows(self, rows: Any) -> np.ndarray:
        """Rows as lists in feature order, or as objects keyed by feature name."""
        if type(rows) is not list:
            raise InvalidInput("instances must be a list of rows")
        self.check_rows(len(rows))
        lists = [row if type(row) is list else self._ordered(i, row) for i, row in enumerate(rows)]
        width = len(self.names)
        for i, row in enumerate(lists):
            if len(row) != width:
                raise InvalidInput(
                    f"instance {i} has {len(row)} values; the model takes {width} features: "
                    f"{self._listed()}"
                )
        return self._matrix(lists)

    def from_columns(self, columns: dict[str, list[Any]]) -> np.ndarray:
        """One list of values per feature name, all of one length."""
        self._check_names(columns.keys(), "inputs")
        return self._matrix(
            [list(row) for row in zip(*(columns[n] for n in self.names), strict=True)]
        )

    def from_flat(self, values: list[Any], rows: int) -> np.ndarray:
        """`rows` * features values, row after row (a tensor of shape [rows, features])."""
        width = len(self.names)
        if self.numeric_only:
            numbers = _finite_numbers(values)
            if numbers is not None:
                return numbers.reshape(rows, width)
        return self._matrix([values[i * width : (i + 1) * width] for i in range(rows)])

    def check_rows(self, rows: int) -> None:
        if rows == 0:
            raise InvalidInput("the batch is empty: send at least one row")
        if rows > self._max_rows:
            raise PayloadTooLarge(
                f"the batch has {rows} rows; this server takes at most {self._max_rows} per "
                "request (MODELOPS_MAX_BATCH_ROWS): split it"
            )

    def _ordered(self, index: int, row: Any) -> list[Any]:
        if type(row) is not dict:
            raise InvalidInput(
                f"instance {index} must be a list of values in feature order or an object keyed "
                "by feature name"
            )
        if row.keys() != self._name_set:
            self._check_names(row.keys(), f"instance {index}")
        return [row[name] for name in self.names]

    def _check_names(self, given: Any, where: str) -> None:
        unknown = sorted(set(given) - self._name_set)
        missing = [name for name in self.names if name not in given]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown feature(s) {', '.join(map(repr, unknown))}")
            if missing:
                problems.append(f"missing feature(s) {', '.join(map(repr, missing))}")
            raise InvalidInput(f"{where}: {'; '.join(problems)}; the model takes {self._listed()}")

    def _matrix(self, lists: list[list[Any]]) -> np.ndarray:
        if self.numeric_only:
            numbers = _finite_numbers(list(chain.from_iterable(lists)))
            if numbers is not None:
                return numbers.reshape(len(lists), len(self.names))
        elif all(self._valid(j, v) for row in lists for j, v in enumerate(row)):
            matrix = np.empty((len(lists), len(self.names)), dtype=object)
            matrix[:] = lists
            return matrix
        raise InvalidInput(self._first_invalid(lists))

    def _valid(self, column: int, value: Any) -> bool:
        if column in self._categorical:
            return type(value) is str
        return type(value) in (int, float) and math.isfinite(value)

    def _first_invalid(self, lists: list[list[Any]]) -> str:
        row, column, value = next(
            (i, j, v)
            for i, row in enumerate(lists)
            for j, v in enumerate(row)
            if not self._valid(j, v)
        )
        if column in self._categorical:
            expected = "a string (one of the categories)"
        elif type(value) is float:
            expected = "a finite number (NaN and infinity are not)"
        else:
            expected = "a number"
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return f"row {row}, feature {self.names[column]!r}: {shown} is not {expected}"

    def _listed(self) -> str:
        return ", ".join(map(repr, self.names))
