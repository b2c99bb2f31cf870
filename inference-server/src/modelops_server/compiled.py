"""Compiled models: the fitted parameters of tree ensembles and linear models as flat numpy
arrays, evaluated for all rows at once (trees walked in C, `_kernels.c`), and their file
(`model.npz`: numbers only, read with `allow_pickle=False`, so serving one runs no code from
the file and needs no scikit-learn). `compiling.py` makes them from scikit-learn estimators.

scikit-learn spends milliseconds per call on input validation and per-tree Python overhead
(a 100-tree forest: ~4 ms for one row); here one row costs a few microseconds. The answers
are scikit-learn's to the last bit where the arithmetic allows it: the same input dtype, the
same comparisons, leaf values summed in the same order, the same link functions computed the
same way. tests/server/test_server_compiled.py compares them for every supported estimator,
straight from the estimator and through the file.

Tree ensembles are explained too: exact TreeSHAP in the same C extension, from each node's
cover (format 2 on; tests/server/test_server_explain.py holds it to the shap library's
TreeExplainer).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from ._kernels import Walker
from .errors import InvalidInput, NotExplainable
from .prediction import Explanation, Prediction, Units

# What a compiled file says it is, and the layout of its arrays this server writes; it reads
# format 1 too (trees without covers: served, not explained).
FORMAT = "modelops-compiled"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
Link = Literal["identity", "logistic", "softmax"]


class CompiledFileError(Exception):
    """A compiled file this server cannot read; the message says why."""


@dataclass(frozen=True)
class Trees:
    """Every node of every tree in flat arrays, addressed by slot: node n is slots 2n and
    2n + 1, so the step to a child is one addition (`slot + goes_right`) and one lookup. A
    leaf's children are the leaf itself, so walks side by side can take the same steps."""

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
    # Per slot: the training weight (or sample count) that reached the node; what TreeSHAP
    # weighs the paths a row does not take by. None in a format 1 file: not explained.
    cover: np.ndarray | None = None
    # The arrays checked for the walk (_kernels.c), which never reads outside them.
    _walker: Walker = field(init=False, repr=False, compare=False)
    # (outputs,): the sum of the trees' expected values (their mean leaf values by cover).
    _expected: np.ndarray | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """ValueError when the arrays do not make trees (a child or feature out of range)."""
        walker = Walker(
            self.children,
            self.feature,
            self.threshold,
            self.value,
            self.roots,
            self.depth,
            self.dtype is np.float32,
            self.cover,
        )
        object.__setattr__(self, "_walker", walker)
        expected = None
        if self.cover is not None:
            expected = np.zeros(self.value.shape[1])
            # Checks the nodes make trees (as an explanation walks them), then tables what
            # explanations of shallow trees look up (_kernels.c, "Leaf tables").
            walker.expectation(expected, 1.0)
            walker.tabulate()
        object.__setattr__(self, "_expected", expected)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}children": self.children,
            f"{prefix}feature": self.feature,
            f"{prefix}threshold": self.threshold,
            f"{prefix}value": self.value,
            f"{prefix}roots": self.roots,
            f"{prefix}depth": np.array(self.depth),
            f"{prefix}float32": np.array(self.dtype is np.float32),
        } | ({} if self.cover is None else {f"{prefix}cover": self.cover})

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Trees:
        parts = (
            _integers(arrays, f"{prefix}children"),
            _integers(arrays, f"{prefix}feature"),
            _floats(arrays, f"{prefix}threshold"),
            _floats(arrays, f"{prefix}value", dimensions=(2,)),
            _integers(arrays, f"{prefix}roots"),
            int(_scalar(arrays, f"{prefix}depth")),
            np.float32 if bool(_scalar(arrays, f"{prefix}float32")) else np.float64,
            _floats(arrays, f"{prefix}cover") if f"{prefix}cover" in arrays else None,
        )
        try:
            return cls(*parts)
        except ValueError as exc:
            raise CompiledFileError(f"its trees do not fit together: {exc}") from None

    def takes(self, features: int) -> bool:
        """Whether every split reads a feature of rows `features` wide."""
        return bool(self._walker.features_needed <= features)

    def total(
        self, matrix: np.ndarray, start: np.ndarray | None = None, divisor: int = 1
    ) -> np.ndarray:
        """(rows, outputs): `start` (or zero) plus the leaf values of every tree, added in tree
        order as scikit-learn does, so the sums round the same way; divided by `divisor`."""
        shape = (len(matrix), self.value.shape[1])
        if start is None:
            totals = np.zeros(shape)
        else:
            totals = np.empty(shape)
            totals[:] = start
        try:
            self._walker.add(np.ascontiguousarray(matrix, dtype=np.float64), totals, divisor)
        except OverflowError:
            raise _beyond_float32() from None
        return totals

    def explain(
        self, matrix: np.ndarray, start: np.ndarray | None = None, divisor: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, features, outputs) SHAP values of `total`'s outputs, and their base values:
        the trees' expected values plus `start`, divided by `divisor` as `total` divides."""
        if self.cover is None or self._expected is None:
            raise NotExplainable(
                "its compiled form has no node covers, which TreeSHAP needs (a format 1 file, "
                "from a trainer before explanations): train it again to explain it"
            )
        rows, width = matrix.shape
        contributions = np.zeros((rows, width, self.value.shape[1]))
        try:
            self._walker.explain(
                np.ascontiguousarray(matrix, dtype=np.float64), contributions, divisor
            )
        except OverflowError:
            raise _beyond_float32() from None
        base_values = self._expected / divisor
        if start is not None:
            base_values = base_values + start
        return contributions, base_values


def _beyond_float32() -> InvalidInput:
    # scikit-learn refuses such values rather than predict with infinity.
    return InvalidInput("a value is too large for this model (beyond float32's range)")


class Compiled(Protocol):
    """A compiled predictor: predicts, and is saved as named arrays."""

    KIND: ClassVar[str]

    def predict(self, matrix: np.ndarray) -> Prediction: ...

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation:
        """Each feature's contribution to each output, for every row; NotExplainable when
        this predictor has no explainer. `background`: training rows, where the explainer
        needs them."""
        ...

    def takes(self, features: int) -> bool:
        """Whether it predicts from rows of `features` values."""
        ...

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
        mean = self.trees.total(matrix, divisor=self.count)
        if self.classification:
            return Prediction(mean.argmax(axis=1), mean)
        return Prediction(mean[:, 0], None)

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation:
        contributions, base_values = self.trees.explain(matrix, divisor=self.count)
        units: Units = "probability" if self.classification else "value"
        return Explanation(contributions, base_values, units, "tree-shap")

    def takes(self, features: int) -> bool:
        return self.trees.takes(features)

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

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation:
        contributions, base_values = self.trees.explain(matrix, self.start)
        return Explanation(contributions, base_values, _score_units(self.link), "tree-shap")

    def takes(self, features: int) -> bool:
        return self.trees.takes(features)

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

    def explain(self, matrix: np.ndarray, background: np.ndarray | None) -> Explanation:
        """Exact: a feature's contribution is its coefficient times its distance from the
        background's mean (in the score's units: the log-odds of a classifier)."""
        if background is None:
            raise NotExplainable(
                "a linear model's contributions are measured from the training rows' means, "
                "and its metadata.json keeps no training rows (trained before explanations, or "
                "provided without metadata): train it again to explain it"
            )
        mean = background.mean(axis=0)
        # (features, outputs), a regressor's one output too.
        coef = self.coef_t.reshape(len(self.coef_t), -1)
        contributions = (matrix - mean)[:, :, None] * coef[None, :, :]
        base_values = mean @ coef + np.ravel(self.intercept)
        return Explanation(contributions, base_values, _score_units(self.link), "linear")

    def takes(self, features: int) -> bool:
        return bool(self.coef_t.shape[0] == features)

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
    if int(_scalar(arrays, "format_version")) not in READABLE_FORMAT_VERSIONS:
        raise CompiledFileError(
            f"it has format_version {arrays['format_version']}; this server reads "
            f"{' and '.join(map(str, READABLE_FORMAT_VERSIONS))}"
        )
    kind = KINDS.get(str(_scalar(arrays, "kind")))
    if kind is None:
        raise CompiledFileError(f"its kind {str(arrays['kind'])!r} is not one of {sorted(KINDS)}")
    predictor: Compiled = kind.from_arrays(arrays)
    features = int(_scalar(arrays, "features"))
    if not predictor.takes(features):
        raise CompiledFileError(f"its {kind.KIND} do not take the {features} features it lists")
    return CompiledModel(predictor, features, int(_scalar(arrays, "classes")))


def _score_units(link: Link) -> Units:
    """A score through the identity is the prediction; through a link, the log-odds."""
    return "value" if link == "identity" else "logit"


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
