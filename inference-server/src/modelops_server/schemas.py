"""The request and response bodies, for the OpenAPI schema only: the hot path parses JSON
itself (`inputs.py`, `v2.py`), because pydantic validation of every value costs more than the
prediction. Keep these in step with what those modules accept and the data plane returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Value = float | str
# v2.DATATYPES, spelled out for the schema (a test keeps both equal).
Datatype = Literal[
    "BOOL",
    "BYTES",
    "FP16",
    "FP32",
    "FP64",
    "INT16",
    "INT32",
    "INT64",
    "INT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "UINT8",
]
# An empty batch, or a tensor of no columns, is never a request the server answers.
Dimension = Annotated[int, Field(ge=1)]


class PredictRequest(BaseModel):
    instances: list[
        Annotated[list[Value], Field(min_length=1)]
        | Annotated[dict[str, Value], Field(min_length=1)]
    ] = Field(
        description="Rows, as lists in the training feature order or as objects keyed by "
        "feature name (all rows of one kind). Numbers for numeric features, strings for "
        "categorical ones.",
        min_length=1,
        examples=[[[5.1, 3.5, 1.4, 0.2]]],
    )


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Value] = Field(description="A class label or a value per row.")
    classes: list[str] | None = Field(
        None, description="Classifiers: the class labels, in the order of `probabilities`' columns."
    )
    probabilities: list[list[float]] | None = Field(
        None, description="Classifiers with probabilities: one row of class probabilities per row."
    )


class ExplainResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Value] = Field(description="As /predict answers.")
    method: Literal["tree-shap", "linear", "exact-shapley", "sampled-shapley"] = Field(
        description="Exact TreeSHAP (compiled tree ensembles), exact for a linear model, exact "
        "Shapley values over every coalition of features, or estimated from sampled orderings "
        "of them (models scikit-learn serves), against the training rows kept in the artifact."
    )
    units: Literal["probability", "logit", "value"] = Field(
        description="What the contributions add up to: class probabilities (forests), log-odds "
        "(boosted classifiers), or the predicted value (regressors)."
    )
    outputs: list[str] = Field(
        description="What each contribution column explains: a class (a binary boosted "
        "classifier's one column is the second class's log-odds), or 'prediction'."
    )
    features: list[str]
    base_values: list[float] = Field(
        description="Per output: the mean over the training data, where every row's "
        "contributions start from: base value plus a row's contributions is its output."
    )
    contributions: list[list[list[float]]] = Field(
        description="[rows][features][outputs]: each feature's SHAP value (exact TreeSHAP)."
    )


class CardFeature(BaseModel):
    name: str
    type: Literal["numeric", "categorical"]
    categories: list[str] | None = Field(None, description="Categorical: the values seen.")
    min: float | None = Field(None, description="Numeric: the smallest value in training.")
    max: float | None = Field(None, description="Numeric: the largest value in training.")


class CardRuntime(BaseModel):
    name: str = Field(description="compiled, or scikit-learn.")
    reason: str = Field(description="Why the model is not compiled; empty when it is.")
    server: str
    libraries: dict[str, str] = Field(description="The library versions it was trained with.")


class CardImportance(BaseModel):
    method: str = Field(description="How the SHAP values were computed (see /explain's method).")
    rows: int = Field(description="The held-out rows they were computed on.")
    units: str
    features: dict[str, float] = Field(
        description="Per feature, largest first: its mean |SHAP value| over the rows, summed "
        "over the outputs (classes)."
    )


class ModelCard(BaseModel):
    """What the model's page and `modelops-load` are built from."""

    name: str
    version: str
    task: Literal["classification", "regression"]
    estimator: str
    features: list[CardFeature] = Field(description="The inputs, in the order rows take them.")
    classes: list[str] | None
    metrics: dict[str, float] = Field(description="Held-out metrics from training.")
    trainedAt: str | None = Field(description="Unknown for a model trained elsewhere.")
    importance: CardImportance | None = Field(
        description="Global importance, computed at training; absent before explanations."
    )
    sha256: str
    runtime: CardRuntime


class HistoryVersion(BaseModel):
    version: str
    origin: Literal["Trained", "Provided"]
    trainedAt: str | None
    score: str | None = Field(description="The gate's metric, e.g. accuracy=0.967.")
    metrics: dict[str, float]
    servedSince: str | None = Field(
        description="When it last began serving; null for a version that has not served."
    )
    registeredModel: str | None = Field(None, description="models:/<name>/<version>, in MLflow.")


class History(BaseModel):
    """What the operator writes for the model's page: its status.history."""

    serving: str = Field(description="The version serving now.")
    servingSince: str | None = Field(description="Since when; null while its rollout runs.")
    versions: list[HistoryVersion] = Field(description="Newest first.")


class Drained(BaseModel):
    drained: float = Field(description="The seconds waited; connections close from then on.")


class Error(BaseModel):
    error: str = Field(description="What was wrong, and how to fix it.")


class Parameters(BaseModel):
    model_config = {"extra": "allow"}


class RequestInput(BaseModel):
    name: str
    shape: list[Dimension] = Field(
        description="[rows, features], or [rows] (or [rows, 1]) for one tensor per feature.",
        min_length=1,
        max_length=2,
    )
    datatype: Datatype = Field(
        description="Any of the protocol's: the values are read as numbers (strings for "
        "categorical features) whatever it says."
    )
    data: list[Any] = Field(description="Row-major values, flat or nested.")
    parameters: Parameters | None = None


class RequestOutput(BaseModel):
    name: Literal["predict", "predict_proba", "contributions", "base_values"] = Field(
        description="Infer: predict, and predict_proba (classifiers with probabilities only). "
        "Explain: contributions and base_values."
    )
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class ExplainInferenceResponse(InferenceResponse):
    parameters: dict[str, Any] = Field(
        description="method, units, outputs and features, as /explain names them; the outputs are "
        "contributions [rows, features, outputs] and base_values [outputs]."
    )


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class MetadataModelResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] = Field(
        description="The estimator, features, classes, sha256 and the runtime serving it "
        "('compiled' or 'scikit-learn', with the reason when not compiled)."
    )


class MetadataServerResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Health(BaseModel):
    live: bool | None = None
    ready: bool | None = None


REQUEST_BODIES: tuple[type[BaseModel], ...] = (PredictRequest, InferenceRequest)
