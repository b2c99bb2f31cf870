"""The ModelDeployment API (modelops.dev/v1alpha1): the single source of truth.

The CRD in `crds/` is generated from these models (`python -m modelops_operator.crd`), so the
schema the apiserver enforces and the model the operator parses cannot drift apart. Rules that
need more than a schema are `Rule`s: one CEL expression for the apiserver and one Python
predicate for the operator, side by side, and a test runs both over the same cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

# -- vocabularies -----------------------------------------------------------------------------

Classifier = Literal[
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
    "HistGradientBoostingClassifier",
    "LogisticRegression",
    "SVC",
    "KNeighborsClassifier",
    "DecisionTreeClassifier",
]
Regressor = Literal[
    "RandomForestRegressor",
    "ExtraTreesRegressor",
    "GradientBoostingRegressor",
    "HistGradientBoostingRegressor",
    "LinearRegression",
    "Ridge",
    "SVR",
    "KNeighborsRegressor",
    "DecisionTreeRegressor",
]
Estimator = Literal[Classifier, Regressor]
ClassificationDataset = Literal["iris", "wine", "breast_cancer", "digits"]
RegressionDataset = Literal["diabetes"]
BuiltinDataset = Literal[ClassificationDataset, RegressionDataset]
ClassificationMetric = Literal["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"]
RegressionMetric = Literal["rmse", "mae", "mape", "r2"]
Metric = Literal[ClassificationMetric, RegressionMetric]

CLASSIFIERS: tuple[str, ...] = get_args(Classifier)
REGRESSORS: tuple[str, ...] = get_args(Regressor)
CLASSIFICATION_DATASETS: tuple[str, ...] = get_args(ClassificationDataset)
REGRESSION_DATASETS: tuple[str, ...] = get_args(RegressionDataset)
CLASSIFICATION_METRICS: tuple[str, ...] = get_args(ClassificationMetric)
REGRESSION_METRICS: tuple[str, ...] = get_args(RegressionMetric)
# Error metrics pass the gate from below; every other metric from above.
LOWER_IS_BETTER = ("rmse", "mae", "mape")

Phase = Literal["Pending", "Training", "Deploying", "Ready", "Failed"]
ModelOrigin = Literal["Trained", "Provided"]

# The Kubernetes quantity grammar (resource.Quantity's, as controller-gen writes it): "512Mi"
# passes, "512mi" does not, at admission and here alike.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"
# Prometheus' body_size_limit: a unit is required; KB, MB and GB are powers of 1024.
BODY_SIZE_PATTERN = r"^[0-9]+(B|KB|MB|GB)$"
VERSION_PATTERN = r"^v[0-9a-f]{12}$"
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# S3's bucket naming rules (3 to 63 lowercase letters, digits, '.' and '-'); keys without a
# leading or trailing '/' and without empty segments.
S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
S3_PREFIX_PATTERN = r"^[^/]+(/[^/]+)*$"
# A model file: an object in a bucket (a key, not a prefix), a URL, or a version (not an alias,
# which moves) of a model in an MLflow registry.
MODEL_URI_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^/]+(/[^/]+)*|https?://[^/]+/.+"
    r"|models:/[^/@]+/[1-9][0-9]*)$"
)
MLFLOW_URI_PREFIX = "models:/"
# MLflow's alias rules: letters, digits, '_' and '-'; not "latest", nor v<number> (MlflowSpec's
# rule: a version).
MLFLOW_ALIAS_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"
MLFLOW_RESERVED_ALIAS = r"^(latest|[vV][0-9]+)$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_NAME_LENGTH = 40


MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_field(value: str, names: tuple[str, ...] = ()) -> str:
    """One field of a cron expression: items (*, a value or a range, each with an optional
    /step) separated by commas."""
    single = "|".join((value, *names, *(name.upper() for name in names)))
    item = rf"(\*|({single})(-({single}))?)(/[1-9][0-9]*)?"
    return rf"{item}(,{item})*"


# Five fields (minute hour day-of-month month day-of-week) with their ranges, or a macro: what
# a CronJob takes, checked by the same pattern at admission and in the operator.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|hourly)|"
    + " ".join(
        (
            _cron_field(r"[0-5]?[0-9]"),
            _cron_field(r"[01]?[0-9]|2[0-3]"),
            _cron_field(r"0?[1-9]|[12][0-9]|3[01]"),
            _cron_field(
                r"0?[1-9]|1[0-2]",
                MONTH_NAMES,
            ),
            _cron_field(r"[0-7]", WEEKDAY_NAMES),
        )
    )
    + r")$"
)
HISTORY_LIMIT = 10


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


# -- rules that a schema alone cannot say -------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One validation rule, in CEL for admission and in Python for the operator."""

    cel: str
    message: str
    check: Callable[[Any], bool]


def _add_rules_to_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    schema.update(getattr(model, "schema_rules", {}))
    rules: tuple[Rule, ...] = getattr(model, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [
            {"rule": rule.cel, "message": rule.message} for rule in rules
        ]


class ApiModel(BaseModel):
    """camelCase on the wire, unknown fields refused (the apiserver prunes them; we say so)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra=_add_rules_to_schema,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        for rule in self.rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    def to_wire(self, exclude: set[str] | None = None) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude=exclude)


Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    Field(description="A Kubernetes quantity, such as 500m, 2 or 1Gi."),
]


class Resources(ApiModel):
    """Container compute resources, as in a Pod's `resources`."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 512Mi}."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {cpu: 2, memory: 2Gi}."
    )


# -- spec -------------------------------------------------------------------------------------


class CsvDataset(ApiModel):
    rules = (
        Rule(
            cel="has(self.url) != has(self.path)",
            message="csv needs exactly one of url (http or https) or path (a file on a mounted volume)",
            check=lambda csv: (csv.url is None) != (csv.path is None),
        ),
    )
    url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        default=None, description="An http(s) URL the training Job downloads the CSV from."
    )
    path: Annotated[str, Field(pattern=r"^/")] | None = Field(
        default=None,
        description="An absolute path to the CSV inside the training container, whose one "
        "volume is the model's storage at /models: keep the CSV on a claim of your own, name it "
        "in storage.existingClaim, and give its path there (/models/<path on the claim>).",
    )
    target_column: str = Field(
        min_length=1, description="The column to predict; every other column is a feature."
    )


class Dataset(ApiModel):
    rules = (
        Rule(
            cel="has(self.builtin) != has(self.csv)",
            message="dataset needs exactly one of builtin (a scikit-learn bundled dataset) or csv",
            check=lambda dataset: (dataset.builtin is None) != (dataset.csv is None),
        ),
    )
    builtin: BuiltinDataset | None = Field(
        default=None,
        description="A dataset bundled with scikit-learn (no download): iris, wine, "
        "breast_cancer and digits are classification tasks, diabetes is regression.",
    )
    csv: CsvDataset | None = Field(default=None, description="A CSV file with a header row.")


class QualityGate(ApiModel):
    rules = (
        Rule(
            cel=f"self.metric in {_cel_list(LOWER_IS_BETTER)} ? self.threshold >= 0.0 : "
            f"(self.metric == 'r2' ? self.threshold <= 1.0 : "
            f"self.threshold >= 0.0 && self.threshold <= 1.0)",
            message="qualityGate.threshold is out of range: rmse, mae and mape take a value >= 0, "
            "r2 a value <= 1, the other metrics a value from 0 to 1",
            check=lambda gate: (
                gate.threshold >= 0
                if gate.metric in LOWER_IS_BETTER
                else gate.threshold <= 1
                if gate.metric == "r2"
                else 0 <= gate.threshold <= 1
            ),
        ),
    )
    metric: Metric = Field(
        description="The held-out metric that decides promotion. Classification: accuracy, "
        "f1_macro, precision_macro, recall_macro, roc_auc; regression: rmse, mae, mape (a "
        "fraction: 0.1 is 10%), r2."
    )
    threshold: float = Field(
        description="A model is promoted when its metric is at least this (at most this for "
        "rmse, mae and mape); otherwise the model already serving keeps serving."
    )


SearchParameterType = Literal["Int", "Float", "Categorical"]


def _whole(value: float | None) -> bool:
    return value is None or float(value).is_integer()


class SearchParameter(ApiModel):
    # CEL cannot see choices (its values may be of any type), so which fields each type takes
    # is said in the schema (as `_fields_suit_the_type` checks here).
    schema_rules: ClassVar[dict[str, Any]] = {
        "oneOf": [
            {"properties": {"type": {"enum": ["Categorical"]}}, "required": ["choices"]},
            {
                "properties": {"type": {"enum": ["Int", "Float"]}},
                "required": ["low", "high"],
                "not": {"required": ["choices"]},
            },
        ]
    }
    rules = (
        Rule(
            cel="self.type == 'Categorical' ? !has(self.low) && !has(self.high) && "
            "!has(self.step) && !self.log : !has(self.low) || !has(self.high) || "
            "self.low < self.high",
            message="a Categorical parameter takes no low, high, step or log; an Int or Float "
            "parameter's low must be below its high",
            check=lambda parameter: (
                parameter.low is None
                and parameter.high is None
                and parameter.step is None
                and not parameter.log
                if parameter.type == "Categorical"
                else parameter.low is None
                or parameter.high is None
                or parameter.low < parameter.high
            ),
        ),
        Rule(
            cel="!self.log || (has(self.low) && self.low > 0.0 && !has(self.step))",
            message="a log scale needs low above 0 and no step",
            check=lambda parameter: (
                not parameter.log
                or (parameter.low is not None and parameter.low > 0 and parameter.step is None)
            ),
        ),
        Rule(
            cel="self.type != 'Int' || [has(self.low) ? self.low : 0.0, has(self.high) ? "
            "self.high : 0.0, has(self.step) ? self.step : 1.0].all(v, v == double(int(v)))",
            message="an Int parameter takes whole numbers for low, high and step",
            check=lambda parameter: (
                parameter.type != "Int"
                or all(_whole(v) for v in (parameter.low, parameter.high, parameter.step))
            ),
        ),
    )
    type: SearchParameterType = Field(
        description="Int and Float search the range from low to high; Categorical picks one of "
        "choices."
    )
    low: float | None = Field(default=None, description="The range's lower end (Int, Float).")
    high: float | None = Field(default=None, description="The range's upper end (Int, Float).")
    step: float | None = Field(
        default=None, gt=0, description="Only multiples of this from low (Int, Float)."
    )
    log: bool = Field(
        default=False,
        description="Search on a log scale (Int, Float; low above 0): for learning rates and "
        "regularization strengths.",
    )
    choices: list[Any] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="The values to pick from (Categorical): strings, numbers or booleans.",
    )

    @model_validator(mode="after")
    def _fields_suit_the_type(self) -> SearchParameter:
        if self.type == "Categorical" and self.choices is None:
            raise ValueError("a Categorical parameter needs choices")
        if self.type != "Categorical" and (
            self.low is None or self.high is None or self.choices is not None
        ):
            raise ValueError(f"an {self.type} parameter needs low and high, and takes no choices")
        return self


class Search(ApiModel):
    parameters: dict[str, SearchParameter] = Field(
        min_length=1,
        max_length=32,
        description="The hyperparameters to search, by name, each with its range or choices; "
        "hyperparameters keeps the fixed ones (a name may not be in both).",
    )
    trials: int = Field(
        default=20, ge=1, le=1000, description="How many parameter sets to try, one at a time."
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Stop starting trials after this long (the best so far wins; status says "
        "the search was cut short). Without it a search stops at half of "
        "activeDeadlineSeconds, keeping the rest for the refit.",
    )
    metric: Metric | None = Field(
        default=None,
        description="The metric to optimize, by cross-validation on the training split. "
        "Default: qualityGate.metric, else accuracy (classifiers) or r2 (regressors).",
    )
    folds: int = Field(default=3, ge=2, le=10, description="Cross-validation folds per trial.")


def _is_regressor(estimator: str) -> bool:
    return estimator in REGRESSORS


class TrainingSpec(ApiModel):
    rules = (
        Rule(
            cel=f"!has(self.qualityGate) || ((self.estimator in {_cel_list(REGRESSORS)}) == "
            f"(self.qualityGate.metric in {_cel_list(REGRESSION_METRICS)}))",
            message="qualityGate.metric does not suit the estimator: classifiers take "
            "accuracy, f1_macro, precision_macro, recall_macro or roc_auc; regressors take "
            "rmse, mae, mape or r2",
            check=lambda training: (
                training.quality_gate is None
                or _is_regressor(training.estimator)
                == (training.quality_gate.metric in REGRESSION_METRICS)
            ),
        ),
        Rule(
            cel=f"!has(self.dataset.builtin) || ((self.estimator in {_cel_list(REGRESSORS)}) "
            f"== (self.dataset.builtin in {_cel_list(REGRESSION_DATASETS)}))",
            message="the builtin dataset does not suit the estimator: diabetes needs a "
            "regressor; iris, wine, breast_cancer and digits need a classifier",
            check=lambda training: (
                training.dataset.builtin is None
                or _is_regressor(training.estimator)
                == (training.dataset.builtin in REGRESSION_DATASETS)
            ),
        ),
        Rule(
            cel=f"!has(self.search) || !has(self.search.metric) || ((self.estimator in "
            f"{_cel_list(REGRESSORS)}) == (self.search.metric in {_cel_list(REGRESSION_METRICS)}))",
            message="search.metric does not suit the estimator: classifiers take accuracy, "
            "f1_macro, precision_macro, recall_macro or roc_auc; regressors take rmse, mae, mape "
            "or r2",
            check=lambda training: (
                training.search is None
                or training.search.metric is None
                or _is_regressor(training.estimator)
                == (training.search.metric in REGRESSION_METRICS)
            ),
        ),
        Rule(
            cel="!has(self.search) || !has(self.search.timeoutSeconds) || "
            "self.search.timeoutSeconds < self.activeDeadlineSeconds",
            message="search.timeoutSeconds must be below activeDeadlineSeconds, which stops the "
            "whole training Job",
            check=lambda training: (
                training.search is None
                or training.search.timeout_seconds is None
                or training.search.timeout_seconds < training.active_deadline_seconds
            ),
        ),
    )
    dataset: Dataset = Field(description="Where the training data comes from.")
    estimator: Estimator = Field(description="The scikit-learn estimator class to fit.")
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor arguments of the estimator, checked against its own "
        "parameters by the trainer (an unknown or ill-typed one fails the training).",
    )
    test_size: float = Field(
        default=0.2, gt=0, lt=1, description="Fraction of rows held out to compute metrics."
    )
    random_seed: int = Field(
        default=42, ge=0, le=2**32 - 1, description="Seed for the split and estimator."
    )
    search: Search | None = Field(
        default=None,
        description="Search hyperparameters with Optuna (TPE, seeded by randomSeed) before "
        "training: the best trial's values are refitted on the training split and judged by "
        "qualityGate like any model.",
    )
    quality_gate: QualityGate | None = Field(
        default=None, description="Promotion rule; without it every trained model is promoted."
    )
    resources: Resources | None = Field(
        default=None, description="Compute resources of the training container."
    )
    backoff_limit: int = Field(
        default=2, ge=0, le=10, description="Retries of a failed training pod before giving up."
    )
    active_deadline_seconds: int = Field(
        default=1800, ge=1, description="Training is stopped and failed after this long."
    )
    schedule: Annotated[str, Field(pattern=CRON_PATTERN)] | None = Field(
        default=None,
        description="Train again on this schedule, in UTC: five cron fields (minute hour "
        "day-of-month month day-of-week, e.g. '0 3 * * mon-fri') or @hourly, @daily, @weekly, "
        "@monthly, @yearly. New data at the same source gives a new version, which the quality "
        "gate judges; the same data gives the same version again. A run due while one is "
        "running waits for it; of the runs missed while the operator was away, the latest runs.",
    )


class Autoscaling(ApiModel):
    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            check=lambda scaling: scaling.min_replicas <= scaling.max_replicas,
        ),
    )
    min_replicas: int = Field(default=1, ge=1, description="Fewest serving replicas.")
    max_replicas: int = Field(ge=1, description="Most serving replicas.")
    target_cpu_utilization_percentage: int = Field(
        default=80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU use the autoscaler aims for, as in HPA v1.",
    )
    scale_down_stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="How long the load must have stayed low before replicas are removed (the "
        "autoscaler's behavior.scaleDown.stabilizationWindowSeconds; Kubernetes' default is "
        "300).",
    )


def _requests_cpu(resources: Resources | None) -> bool:
    return resources is not None and "cpu" in (resources.requests or {})


class ServingSpec(ApiModel):
    rules = (
        Rule(
            cel="!has(self.autoscaling) || (has(self.resources) && "
            "has(self.resources.requests) && 'cpu' in self.resources.requests)",
            message="serving.autoscaling scales on CPU use as a share of the CPU request, and "
            "the serving container has none: add serving.resources.requests.cpu (e.g. 100m)",
            check=lambda serving: serving.autoscaling is None or _requests_cpu(serving.resources),
        ),
    )
    replicas: int = Field(
        default=1, ge=0, description="Serving replicas (ignored while autoscaling is set)."
    )
    resources: Resources | None = Field(
        default=None, description="Compute resources of each serving container."
    )
    image: str | None = Field(
        default=None, min_length=1, description="Inference server image; default: operator's."
    )
    autoscaling: Autoscaling | None = Field(
        default=None,
        description="Scale on CPU with a HorizontalPodAutoscaler (needs "
        "resources.requests.cpu, which the target utilization is a share of, and a "
        "metrics-server in the cluster).",
    )
    model_version: Annotated[str, Field(pattern=VERSION_PATTERN)] | None = Field(
        default=None,
        description="Serve this earlier version (from status.history) instead of the newest "
        "promoted one: a rollback without retraining. Remove it to follow training again.",
    )


class S3Access(ApiModel):
    """How the pods reach S3-compatible object storage: the standard AWS client settings."""

    endpoint: Annotated[str, Field(pattern=r"^https?://")] | None = Field(
        default=None,
        description="The S3 endpoint URL, for storage other than AWS S3 (MinIO, Ceph, "
        "SeaweedFS, ...); set as AWS_ENDPOINT_URL. Default: the Secret's AWS_ENDPOINT_URL, "
        "else AWS S3.",
    )
    region: str | None = Field(
        default=None, min_length=1, description="The bucket's region (AWS_REGION)."
    )
    credentials_secret: str | None = Field(
        default=None,
        min_length=1,
        description="A Secret in the model's namespace whose keys become environment "
        "variables of the pods that read or write the bucket: AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL when "
        "present). Without it the pods use the node's credentials (an instance profile).",
    )


class S3Storage(S3Access):
    bucket: Annotated[str, Field(pattern=S3_BUCKET_PATTERN)] = Field(
        description="The bucket the artifacts go to (it must exist)."
    )
    prefix: Annotated[str, Field(pattern=S3_PREFIX_PATTERN)] | None = Field(
        default=None,
        description="A key prefix inside the bucket, without leading or trailing '/'; each "
        "version goes under <prefix>/<namespace>/<name>/<version>/.",
    )

    @property
    def root_uri(self) -> str:
        """s3://<bucket>/<prefix>: each model's versions go under <namespace>/<name>/ there."""
        return f"s3://{self.bucket}/{self.prefix or ''}".rstrip("/")


class MlflowSpec(ApiModel):
    """An MLflow tracking server: where training runs are logged and models are registered."""

    rules = (
        Rule(
            cel=f"!self.championAlias.matches('{MLFLOW_RESERVED_ALIAS}')",
            message="mlflow.championAlias cannot be latest or v<number>: MLflow reserves them "
            "for versions",
            check=lambda mlflow: re.fullmatch(MLFLOW_RESERVED_ALIAS, mlflow.champion_alias) is None,
        ),
    )

    tracking_uri: Annotated[str, Field(pattern=r"^https?://")] = Field(
        description="The tracking server's URL (MLFLOW_TRACKING_URI of the training and "
        "fetching pods). Its artifacts must be served by it (mlflow server's default) or "
        "reachable with the Secret's credentials."
    )
    credentials_secret: str | None = Field(
        default=None,
        min_length=1,
        description="A Secret in the model's namespace whose keys become environment "
        "variables of the training and fetching pods: MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN (and AWS_* for an artifact store "
        "in S3 that the server does not serve).",
    )
    champion_alias: Annotated[str, Field(pattern=MLFLOW_ALIAS_PATTERN)] = Field(
        default="champion",
        description="The alias of the registered version that serves: once a trained "
        "version's rollout completes (promotion, rollback or pin), a Job points it there, so "
        "models:/<namespace>.<name>@<alias> loads what serves.",
    )


class ModelSource(S3Access):
    """A model trained elsewhere, served as it is: no training Job."""

    rules = (
        Rule(
            cel="self.uri.startsWith('s3://') || "
            "!(has(self.endpoint) || has(self.region) || has(self.credentialsSecret))",
            message="model: endpoint, region and credentialsSecret are for an s3:// uri; drop "
            "them for an http(s) or models:/ uri",
            check=lambda source: (
                source.uri.startswith("s3://")
                or (
                    source.endpoint is None
                    and source.region is None
                    and source.credentials_secret is None
                )
            ),
        ),
    )
    uri: Annotated[str, Field(pattern=MODEL_URI_PATTERN)] = Field(
        description="The model: a file at s3://<bucket>/<key> (with the settings beside it) or "
        "an http(s) URL, a scikit-learn estimator or Pipeline saved with joblib or pickle; or "
        "models:/<name>/<version>, a scikit-learn model in the MLflow registry of spec.mlflow. "
        "Its features and classes are read from the estimator itself."
    )
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)] = Field(
        description="The model file's sha256, in hex as sha256sum prints it (for an MLflow "
        "model, of the file its MLmodel names, e.g. model.pkl). Every serving pod checks the "
        "file it fetched against it, and loads nothing else: unpickling runs code."
    )

    @property
    def in_mlflow(self) -> bool:
        return self.uri.startswith(MLFLOW_URI_PREFIX)


class StorageSpec(ApiModel):
    rules = (
        Rule(
            cel="!(has(self.existingClaim) && has(self.storageClassName))",
            message="storage: storageClassName applies only to a claim the operator creates; "
            "drop it when using existingClaim",
            check=lambda storage: (
                storage.existing_claim is None or storage.storage_class_name is None
            ),
        ),
        Rule(
            cel="!has(self.s3) || !(has(self.existingClaim) || has(self.storageClassName))",
            message="storage: s3 keeps the artifacts in object storage, with no claim; drop "
            "existingClaim and storageClassName, or s3",
            check=lambda storage: (
                storage.s3 is None
                or (storage.existing_claim is None and storage.storage_class_name is None)
            ),
        ),
    )
    s3: S3Storage | None = Field(
        default=None,
        description="Keep artifacts in S3-compatible object storage: the trainer uploads each "
        "version and every serving pod downloads it at start and checks its digest, so any "
        "number of replicas run on any nodes. Default: the operator's MODELOPS_ARTIFACT_S3, "
        "where set, else a claim.",
    )
    existing_claim: str | None = Field(
        default=None,
        min_length=1,
        description="Keep artifacts on this existing PersistentVolumeClaim (ReadWriteMany "
        "when training and serving pods run on different nodes).",
    )
    size: Annotated[str, Field(pattern=QUANTITY_PATTERN)] = Field(
        default="1Gi", description="Size of the claim the operator creates."
    )
    storage_class_name: str | None = Field(
        default=None, description="Storage class of the claim the operator creates."
    )


class ScrapeLimits(ApiModel):
    """Prometheus' per-scrape limits (docs/observability.md). Unset: the operator's default
    (MODELOPS_SCRAPE_LIMITS); a model may ask for less, and for more only up to the operator's
    MODELOPS_SCRAPE_MAX_LIMITS."""

    sample_limit: int | None = Field(
        default=None,
        ge=1,
        description="Most samples one scrape of a pod may return: a scrape with more is "
        "dropped whole, and the pod shows as down (up == 0) until it returns fewer.",
    )
    label_limit: int | None = Field(
        default=None, ge=1, description="Most labels a sample may have, target labels included."
    )
    label_name_length_limit: int | None = Field(
        default=None, ge=1, description="Longest label name a sample may have."
    )
    label_value_length_limit: int | None = Field(
        default=None, ge=1, description="Longest label value a sample may have."
    )
    body_size_limit: Annotated[str, Field(pattern=BODY_SIZE_PATTERN)] | None = Field(
        default=None,
        description="Largest uncompressed /metrics response, in B, KB, MB or GB (powers of "
        "1024, as Prometheus reads them), e.g. 8MB.",
    )


class PrometheusMonitoring(ScrapeLimits):
    enabled: bool = Field(
        default=True,
        description="Scrape the serving pods: a job in the operator's scrape config files, or a "
        "ServiceMonitor where the operator is set to use them.",
    )
    interval: Annotated[str, Field(pattern=DURATION_PATTERN)] = Field(
        default="15s", description="Scrape interval, e.g. 15s or 1m."
    )


class GrafanaMonitoring(ApiModel):
    enabled: bool = Field(default=True, description="Provision a dashboard for the model.")


class MonitoringSpec(ApiModel):
    prometheus: PrometheusMonitoring = Field(
        default_factory=PrometheusMonitoring, description="Prometheus scraping."
    )
    grafana: GrafanaMonitoring = Field(
        default_factory=GrafanaMonitoring, description="Grafana dashboard."
    )


class ModelDeploymentSpec(ApiModel):
    """Desired state: how to train the model (or where to find one) and how to serve and watch
    it."""

    rules = (
        Rule(
            cel="has(self.training) != has(self.model)",
            message="spec needs exactly one of training (train the model in a Job) or model "
            "(serve a model file you already have)",
            check=lambda spec: (spec.training is None) != (spec.model is None),
        ),
        Rule(
            cel="!(has(self.model) && has(self.storage))",
            message="storage is where trained versions are kept; a spec.model is fetched from "
            "its uri by each serving pod: drop storage",
            check=lambda spec: spec.model is None or "storage" not in spec.model_fields_set,
        ),
    )
    training: TrainingSpec | None = Field(default=None, description="How the model is trained.")
    model: ModelSource | None = Field(
        default=None,
        description="Serve a model file you already have instead of training one: each serving "
        "pod downloads it and checks its sha256 before loading it.",
    )
    serving: ServingSpec = Field(default_factory=ServingSpec, description="How it is served.")
    storage: StorageSpec = Field(
        default_factory=StorageSpec, description="Where model artifacts are kept."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prometheus scraping and Grafana."
    )
    mlflow: MlflowSpec | None = Field(
        default=None,
        description="Log each training run (parameters, metrics, data fingerprint, model) to "
        "this MLflow server and register each version there as <namespace>.<name>; and where "
        "a models:/ uri of spec.model is looked up. Default: the operator's MODELOPS_MLFLOW.",
    )


# -- status -----------------------------------------------------------------------------------

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class StatusModel(ApiModel):
    """Status is written by the operator only; unknown fields would be pruned, so forbid them."""


class Condition(StatusModel):
    type: str = Field(description="Trained, Deployed or Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="A CamelCase word for why.")
    message: str = Field(default="", description="What happened, for humans.")
    last_transition_time: Timestamp = Field(description="When status last changed.")
    observed_generation: int = Field(description="The generation this condition is about.")


class MlflowRecord(StatusModel):
    run_id: str = Field(description="The MLflow run that trained the version.")
    run_url: str = Field(description="The run's page in the MLflow UI.")
    model_uri: str = Field(description="The registered model version, models:/<name>/<version>.")
    model_url: str = Field(description="The registered model version's page in the MLflow UI.")
    alias: str | None = Field(
        default=None,
        description="The registry's alias (mlflow.championAlias) that points at this version "
        "while it serves; unset until the Job that points it there succeeded.",
    )
    alias_problem: str | None = Field(
        default=None, description="Why the alias could not be pointed at this version."
    )

    def registered_version(self) -> tuple[str, str]:
        """(registered model name, version) of model_uri, models:/<name>/<version>."""
        name, _, version = self.model_uri.removeprefix(MLFLOW_URI_PREFIX).rpartition("/")
        return name, version


class SearchRecord(StatusModel):
    metric: Metric = Field(description="The metric the search optimized.")
    folds: int = Field(description="Cross-validation folds per trial.")
    score: float = Field(description="The best trial's mean score over the folds.")
    parameters: dict[str, Any] = Field(description="The best trial's hyperparameters.")
    trials: int = Field(description="Trials run.")
    failed_trials: int = Field(
        default=0, description="Trials whose values the estimator or the data refused."
    )
    stopped: str | None = Field(
        default=None, description="Why the search ran fewer trials than asked; unset otherwise."
    )


class ModelRecord(StatusModel):
    version: str = Field(description="The model version (derived from spec and data).")
    # Required and well-formed: the server unpickles only a file with this digest, and would
    # fall back to the artifact's own (unverifiable) claim without one.
    sha256: str = Field(
        pattern=SHA256_PATTERN,
        description="Digest of the model file (sha256, hex), verified by the server.",
    )
    compiled_sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Digest of the compiled form (model.npz), which the server then serves "
        "without unpickling; unset for a model with none.",
    )
    metadata_sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Digest of the version's metadata.json (its features and classes), "
        "verified by the fetch and the server; unset for a model file spec.model provides and "
        "for versions recorded before it was kept.",
    )
    artifact_path: str = Field(
        description="Where the version is: its directory on the artifact volume, its s3:// "
        "prefix in object storage, or the model file spec.model named."
    )
    origin: ModelOrigin = Field(
        default="Trained",
        description="Trained: a version directory a training Job made (docs/artifact-contract"
        ".md). Provided: the model file of spec.model, served without metadata.",
    )
    metrics: dict[str, float] = Field(default_factory=dict, description="Held-out metrics.")
    score: str | None = Field(default=None, description="The gating metric, e.g. accuracy=0.967.")
    trained_at: Timestamp | None = Field(default=None, description="When it was trained.")
    served_since: Timestamp | None = Field(
        default=None,
        description="When it last began serving: its rollout completed after another version "
        "(or none) served. Unset for a version that has not served.",
    )
    job_name: str | None = Field(
        default=None, description="The training Job that made it (kept while it is in history)."
    )
    mlflow: MlflowRecord | None = Field(
        default=None, description="Its MLflow run and registered model version, where logged."
    )
    search: SearchRecord | None = Field(
        default=None, description="The hyperparameter search that chose its values, where one ran."
    )


class TrainingStatus(StatusModel):
    spec_hash: str = Field(description="Hash of the training spec this run is for.")
    job_name: str = Field(description="The training Job.")
    state: Literal["Running", "Succeeded", "Failed"] = Field(description="How the Job fares.")
    message: str = Field(
        default="",
        description="The trainer's own words on failure, or why its pod cannot run.",
    )
    result: ModelRecord | None = Field(default=None, description="The trained model.")
    scheduled_for: Timestamp | None = Field(
        default=None,
        description="The time of training.schedule this run is for; unset for a run the spec "
        "or the retrain annotation started.",
    )


class ModelDeploymentStatus(StatusModel):
    """Observed state, rebuilt from the Job, its pod and the Deployment on every reconcile."""

    phase: Phase = Field(
        default="Pending", description="Pending, Training, Deploying, Ready, Failed."
    )
    message: str = Field(default="", description="What the operator is doing or waiting for.")
    observed_generation: int | None = Field(default=None, description="Last generation seen.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Trained, Deployed, Ready and Monitored."
    )
    model: ModelRecord | None = Field(default=None, description="The model being served.")
    history: list[ModelRecord] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description="Promoted models, newest first; serving.modelVersion may pin any of them.",
    )
    training: TrainingStatus | None = Field(default=None, description="The latest training run.")
    next_training_at: Timestamp | None = Field(
        default=None, description="When training.schedule trains again."
    )
    replicas: int | None = Field(default=None, description="Serving replicas wanted.")
    ready_replicas: int | None = Field(default=None, description="Serving replicas ready.")
    endpoint: str | None = Field(default=None, description="In-cluster URL of the model's API.")
    grpc_endpoint: str | None = Field(
        default=None,
        description="In-cluster host:port of the model's Open Inference Protocol gRPC service.",
    )
    page: str | None = Field(
        default=None, description="How to open the model's page (its form, card and API) from here."
    )


# The object's name becomes a Service name and the stem of every child's name.
NAME_RULE = Rule(
    cel=f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
    f"self.metadata.name.matches('{NAME_PATTERN}')",
    message=f"metadata.name must be at most {MAX_NAME_LENGTH} characters of lowercase letters, "
    "digits and '-', starting with a letter (it names the model's Service)",
    check=lambda name: (
        len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None
    ),
)
