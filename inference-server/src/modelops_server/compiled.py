"""Compiled models: the fitted parameters of tree ensembles and linear models as flat numpy
arrays, evaluated for all rows and trees at once, and their file (`model.npz`: numbers only,
read with `allow_pickle=False`, so serving one runs no code from the file and needs no
scikit-learn). `compiling.py` makes them from scikit-learn estimators.

scikit-learn spends milliseconds per call on input validation and per-tree Python overhead
(a 100-tree forest: ~4 ms for one row); here one row costs tens of microseconds. The answers
are scikit-learn's to the last bit where the arithmetic allows it: the same input dtype, the
same comparisons, leaf values summed in the same order, the same link functions computed the
same way. tests/server/test_server_compiled.py compares them for every supported estimator,
straight from the estimator and through the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from .errors import InvalidInput
from .prediction import Prediction

# What a compiled file says it is, and the layout of its arrays this server reads.
FORMAT = "modelops-compiled"
FORMAT_VERSION = 1
Link = Literal["identity", "logistic", "softmax"]


class CompiledFileError(Exception):
    """A compiled file this server cannot read; the message says why."""


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

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}children": self.children,
            f"{prefix}feature": self.feature,
            f"{prefix}threshold": self.threshold,
            f"{prefix}value": self.value,
            f"{prefix}roots": self.roots,
            f"{prefix}depth": np.array(self.depth),
            f"{prefix}float32": np.array(self.dtype is np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Trees:
        return cls(
            _integers(arrays, f"{prefix}children"),
            _integers(arrays, f"{prefix}feature"),
            _floats(arrays, f"{prefix}threshold"),
            _floats(arrays, f"{prefix}value", dimensions=(2,)),
            _integers(arrays, f"{prefix}roots"),
            int(_scalar(arrays, f"{prefix}depth")),
            np.float32 if bool(_scalar(arrays, f"{prefix}float32")) else np.float64,
        )

    def total(self, matrix: np.ndarray, start: np.ndarray | float) -> np.ndarray:
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
            # The common case. numpy's cost per call, not per element, sets its pace: every
            # node's decision at once (three calls over all nodes), then one lookup per level,
            # instead of four per level.
            nodes = self._nodes
            goes_right = x.take(nodes.feature) > nodes.threshold
            next_node = np.where(goes_right, nodes.right, nodes.left)
            node = self.roots // 2
            for _ in range(self.depth):
                node = next_node.take(node)
            slot = (2 * node)[:, None]
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

    @cached_property
    def _nodes(self) -> _Nodes:
        return _Nodes(
            self.feature[0::2],
            self.threshold[0::2],
            self.children[0::2] // 2,
            self.children[1::2] // 2,
        )


@dataclass(frozen=True)
class _Nodes:
    """Trees' nodes by node number (slot // 2): the split, and the child's node each way."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray


class Compiled(Protocol):
    """A compiled predictor: predicts, and is saved as named arrays."""

    KIND: ClassVar[str]

    def predict(self, matrix: np.ndarray) -> Prediction: ...

    def arrays(self) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class AveragedTrees:
    """Random and extra-trees forests and single trees: the mean of the trees' leaf values
    (class fractions or regression values)."""

    KIND: ClassVar[str] = "averaged-trees"
    trees: Trees
    count: int
    classification: bool

    def predict(self, matrix: np.ndarray) -> Prediction:
        mean = self.trees.total(matrix, 0.0)
        mean /= self.count
        if self.classification:
            return Prediction(mean.argmax(axis=1), mean)
        return Prediction(mean[:, 0], None)

    def arrays(self) -> dict[str, np.ndarray]:
        return self.trees.arrays("trees.") | {
            "count": np.array(self.count),
            "classification": np.array(self.classification),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> AveragedTrees:
        return cls(
            Trees.from_arrays(arrays, "trees."),
            int(_scalar(arrays, "count")),
            bool(_scalar(arrays, "classification")),
        )


@dataclass(frozen=True)
class BoostedTrees:
    """Gradient boosting (classic and histogram): a start score plus the sum of the trees'
    values, through the link of the estimator's loss."""

    KIND: ClassVar[str] = "boosted-trees"
    trees: Trees
    start: np.ndarray
    link: Link
    # A binary classifier's class at a score of exactly 0: classic gradient boosting says
    # positive, histogram gradient boosting negative.
    ties_to_positive: bool

    def predict(self, matrix: np.ndarray) -> Prediction:
        raw = self.trees.total(matrix, self.start)
        if self.link == "identity":
            return Prediction(raw[:, 0], None)
        if self.link == "logistic":
            score = raw[:, 0]
            positive = score >= 0 if self.ties_to_positive else score > 0
            return Prediction(positive.astype(np.intp), _logistic(score))
        return Prediction(raw.argmax(axis=1), _softmax(raw))

    def arrays(self) -> dict[str, np.ndarray]:
        return self.trees.arrays("trees.") | {
            "start": self.start,
            "link": np.array(self.link),
            "ties_to_positive": np.array(self.ties_to_positive),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> BoostedTrees:
        return cls(
            Trees.from_arrays(arrays, "trees."),
            _floats(arrays, "start"),
            _link(arrays),
            bool(_scalar(arrays, "ties_to_positive")),
        )


@dataclass(frozen=True)
class Linear:
    """Linear and logistic regression: X @ coef.T + intercept, as scikit-learn computes it."""

    KIND: ClassVar[str] = "linear"
    # (features, outputs), contiguous.
    coef_t: np.ndarray
    intercept: np.ndarray
    link: Link

    def predict(self, matrix: np.ndarray) -> Prediction:
        decision = matrix @ self.coef_t + self.intercept
        if self.link == "identity":
            return Prediction(decision.ravel(), None)
        if self.link == "logistic":
            score = decision.ravel()
            return Prediction((score > 0).astype(np.intp), _logistic(score))
        return Prediction(decision.argmax(axis=1), _softmax(decision))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef_t": self.coef_t, "intercept": self.intercept, "link": np.array(self.link)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Linear:
        return cls(
            np.ascontiguousarray(_floats(arrays, "coef_t", dimensions=(1, 2))),
            _floats(arrays, "intercept", dimensions=(0, 1)),
            _link(arrays),
        )


KINDS: dict[str, Any] = {kind.KIND: kind for kind in (AveragedTrees, BoostedTrees, Linear)}


@dataclass(frozen=True)
class CompiledModel:
    """A compiled file's content: the predictor, and what it takes and answers, to check
    against the model's metadata."""

    predictor: Compiled
    features: int
    # The number of classes; 0 for a regressor.
    classes: int


def to_bytes(model: CompiledModel) -> bytes:
    """The compiled file: an uncompressed .npz (it loads fastest) of numeric arrays and a few
    strings, none of them objects."""
    buffer = io.BytesIO()
    named: dict[str, Any] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "kind": np.array(model.predictor.KIND),
        "features": np.array(model.features),
        "classes": np.array(model.classes),
        **model.predictor.arrays(),
    }
    # allow_pickle=False: writing an object array fails here rather than at the server.
    np.savez(buffer, allow_pickle=False, **named)
    return buffer.getvalue()


def from_bytes(content: bytes) -> CompiledModel:
    """The predictor a compiled file holds. `allow_pickle=False`: an object array in the file
    is an error, never code run."""
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise CompiledFileError(f"it is not a readable .npz of plain arrays: {exc}") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise CompiledFileError(f"it is not a {FORMAT} file")
    if int(_scalar(arrays, "format_version")) != FORMAT_VERSION:
        raise CompiledFileError(
            f"it has format_version {arrays['format_version']}; this server reads {FORMAT_VERSION}"
        )
    kind = KINDS.get(str(_scalar(arrays, "kind")))
    if kind is None:
        raise CompiledFileError(f"its kind {str(arrays['kind'])!r} is not one of {sorted(KINDS)}")
    predictor: Compiled = kind.from_arrays(arrays)
    return CompiledModel(
        predictor, int(_scalar(arrays, "features")), int(_scalar(arrays, "classes"))
    )


def _logistic(score: np.ndarray) -> np.ndarray:
    """(rows, 2) probabilities of a binary classifier's score, as scikit-learn's binomial
    loss computes them (scipy's expit, imported only for models that need it)."""
    from scipy.special import expit

    probabilities = np.empty((len(score), 2))
    probabilities[:, 1] = expit(score)
    probabilities[:, 0] = 1 - probabilities[:, 1]
    return probabilities


def _softmax(raw: np.ndarray) -> np.ndarray:
    """scikit-learn's softmax, step for step, so it rounds the same."""
    exp = raw - raw.max(axis=1).reshape((-1, 1))
    np.exp(exp, out=exp)
    exp /= exp.sum(axis=1).reshape((-1, 1))
    return exp


def _scalar(arrays: dict[str, np.ndarray], name: str) -> Any:
    value = _array(arrays, name)
    if value.ndim != 0:
        raise CompiledFileError(f"{name} must be a single value")
    return value[()]


def _integers(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    value = _array(arrays, name)
    if value.ndim != 1 or value.dtype.kind not in "iu":
        raise CompiledFileError(f"{name} must be a list of integers")
    return value.astype(np.intp, copy=False)


def _floats(
    arrays: dict[str, np.ndarray], name: str, dimensions: tuple[int, ...] = (1,)
) -> np.ndarray:
    value = _array(arrays, name)
    if value.ndim not in dimensions or value.dtype != np.float64:
        shapes = " or ".join(f"{n}-dimensional" for n in dimensions)
        raise CompiledFileError(f"{name} must be {shapes} float64")
    return value


def _array(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return arrays[name]
    except KeyError:
        raise CompiledFileError(f"it has no {name!r} array") from None


def _link(arrays: dict[str, np.ndarray]) -> Link:
    link = str(_scalar(arrays, "link"))
    if link not in ("identity", "logistic", "softmax"):
        raise CompiledFileError(f"link {link!r} is not identity, logistic or softmax")
    return link  # type: ignore[return-value]
