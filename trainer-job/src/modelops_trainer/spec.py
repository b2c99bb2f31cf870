"""The training spec: the `training` part of a ModelDeployment, as the trainer reads it.

camelCase keys, as in the resource. The trainer's own sections refuse unknown keys so that a
typo fails the run instead of being silently ignored; the keys only the operator reads are
accepted and not interpreted.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .errors import TrainingError, did_you_mean

# The CRD's defaults, so a spec with them left out gets the same version as the operator's copy
# (which has them filled in).
DEFAULT_TEST_SIZE = 0.2
DEFAULT_RANDOM_SEED = 42
DEFAULT_SEARCH_TRIALS = 20
DEFAULT_SEARCH_FOLDS = 3
# numpy's seeds are 32-bit.
MAX_RANDOM_SEED = 2**32 - 1


class _Section(BaseModel):
    # Strict: "0.2" is not a number and 1.0 is not a seed; the resource says what it means.
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True)


class CsvSource(_Section):
    url: str | None = None
    path: str | None = None
    target_column: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_location(self) -> CsvSource:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url (http or https) or path (a file)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self


class DatasetSpec(_Section):
    builtin: str | None = None
    csv: CsvSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.builtin is None) == (self.csv is None):
            raise ValueError("give exactly one of builtin (a scikit-learn dataset) or csv")
        return self


class SearchParameter(_Section):
    """One hyperparameter's range (Int, Float) or choices (Categorical), as Optuna suggests it."""

    type: Literal["Int", "Float", "Categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = Field(default=None, gt=0)
    log: bool = False
    choices: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchParameter:
        if self.type == "Categorical":
            if self.choices is None or any(
                field is not None for field in (self.low, self.high, self.step)
            ):
                raise ValueError("a Categorical parameter takes choices, and no low, high or step")
            if self.log:
                raise ValueError("a Categorical parameter has no log scale")
            for choice in self.choices:
                if choice is not None and not isinstance(choice, str | int | float | bool):
                    raise ValueError(f"choice {choice!r} is not a string, number, boolean or null")
            return self
        if self.low is None or self.high is None or self.choices is not None:
            raise ValueError(f"an {self.type} parameter takes low and high, and no choices")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log scale needs low > 0 and no step")
        if self.type == "Int" and not all(
            bound is None or float(bound).is_integer() for bound in (self.low, self.high, self.step)
        ):
            raise ValueError("an Int parameter takes whole numbers for low, high and step")
        return self


class SearchSpec(_Section):
    parameters: dict[str, SearchParameter] = Field(min_length=1)
    trials: int = Field(default=DEFAULT_SEARCH_TRIALS, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1)
    metric: str | None = None
    folds: int = Field(default=DEFAULT_SEARCH_FOLDS, ge=2)


class TrainingSpec(_Section):
    dataset: DatasetSpec
    estimator: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    test_size: float = Field(default=DEFAULT_TEST_SIZE, gt=0, lt=1)
    random_seed: int = Field(default=DEFAULT_RANDOM_SEED, ge=0, le=MAX_RANDOM_SEED)
    search: SearchSpec | None = None
    # Read by the operator; accepted so that the whole training spec can be passed as is.
    quality_gate: Any = None
    resources: Any = None
    backoff_limit: Any = None
    active_deadline_seconds: Any = None

    def model_inputs(self) -> dict[str, Any]:
        """The fields that change the model, with defaults filled in, as canonical JSON input."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            include={
                "dataset",
                "estimator",
                "hyperparameters",
                "test_size",
                "random_seed",
                "search",
            },
        )


def parse_spec(raw: object) -> TrainingSpec:
    if not isinstance(raw, dict):
        raise TrainingError(
            f"the training spec must be a mapping of keys to values, got {type(raw).__name__}"
        )
    try:
        return TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise TrainingError(f"invalid training spec: {problems}") from None


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{location}: unknown key: {_suggestion(error['loc'])}"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _suggestion(location: tuple[Any, ...]) -> str:
    """For an unknown key: the closest allowed one (typos are the usual cause) and all of them."""
    model: Any = TrainingSpec
    parts = iter(location[:-1])
    for part in parts:
        # Down through the sections: each is `Section | None`, `Section` or `dict[str, Section]`.
        annotation = model.model_fields[_field_name(model, str(part))].annotation
        if get_origin(annotation) is dict:
            next(parts)  # the map's key, a name of the user's
            annotation = get_args(annotation)[1]
        model = next(arg for arg in get_args(annotation) or (annotation,) if arg is not type(None))
    allowed = [field.alias or name for name, field in model.model_fields.items()]
    return f"{did_you_mean(str(location[-1]), allowed)}the allowed keys are {', '.join(allowed)}"


def _field_name(model: type[BaseModel], alias: str) -> str:
    return next(name for name, field in model.model_fields.items() if field.alias == alias)
