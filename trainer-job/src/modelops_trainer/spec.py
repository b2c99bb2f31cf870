"""The training spec: the `training` part of a ModelDeployment, as the trainer reads it.

camelCase keys, as in the resource. The trainer's own sections refuse unknown keys so that a
typo fails the run instead of being silently ignored; the keys only the operator reads are
accepted and not interpreted.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .errors import TrainingError, did_you_mean

# The CRD's defaults, so a spec with them left out gets the same version as the operator's copy
# (which has them filled in).
DEFAULT_TEST_SIZE = 0.2
DEFAULT_RANDOM_SEED = 42
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


class TrainingSpec(_Section):
    dataset: DatasetSpec
    estimator: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    test_size: float = Field(default=DEFAULT_TEST_SIZE, gt=0, lt=1)
    random_seed: int = Field(default=DEFAULT_RANDOM_SEED, ge=0, le=MAX_RANDOM_SEED)
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
            include={"dataset", "estimator", "hyperparameters", "test_size", "random_seed"},
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
    for part in location[:-1]:
        # Down through the sections: each is `Section | None` or `Section`.
        annotation = model.model_fields[_field_name(model, str(part))].annotation
        model = next(arg for arg in get_args(annotation) or (annotation,) if arg is not type(None))
    allowed = [field.alias or name for name, field in model.model_fields.items()]
    return f"{did_you_mean(str(location[-1]), allowed)}the allowed keys are {', '.join(allowed)}"


def _field_name(model: type[BaseModel], alias: str) -> str:
    return next(name for name, field in model.model_fields.items() if field.alias == alias)
