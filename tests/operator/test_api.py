"""The CRD and the pydantic spec model are one API: generated from one source, and agreeing on
every accepted and rejected example, as judged by the real apiserver."""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from modelops_envtest.controlplane import ControlPlane
from modelops_operator import api, crd

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modelops.dev_modeldeployments.yaml"
# Every ModelDeployment sample, the ones beside a server they need (object-storage/) too.
SAMPLES = sorted(
    path
    for path in (ROOT / "deploy" / "samples").rglob("*.yaml")
    if path.name != "kustomization.yaml" and "ModelDeployment" in path.read_text()
)

VALID_SPEC: dict[str, Any] = {
    "training": {
        "dataset": {"builtin": "iris"},
        "estimator": "RandomForestClassifier",
        "qualityGate": {"metric": "accuracy", "threshold": 0.9},
    }
}


PROVIDED_MODEL: dict[str, Any] = {
    "uri": "s3://models/team-a/iris/model.joblib",
    "sha256": "0123456789abcdef" * 4,
    "endpoint": "http://minio.storage:9000",
    "credentialsSecret": "s3-credentials",
}


def searching(**parameters: dict[str, Any]) -> dict[str, Any]:
    return with_change("training.search", {"parameters": parameters})


def with_change(path: str, value: Any) -> dict[str, Any]:
    """VALID_SPEC with one dotted path set (None deletes it)."""
    spec = copy.deepcopy(VALID_SPEC)
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


# (case, spec, the rule message both must give, or None for a schema-level rejection)
INVALID: list[tuple[str, dict[str, Any], str | None]] = [
    ("unknown estimator", with_change("training.estimator", "DeepNet"), None),
    ("unknown dataset", with_change("training.dataset.builtin", "mnist"), None),
    ("test split of 1", with_change("training.testSize", 1), None),
    ("test split of 0", with_change("training.testSize", 0), None),
    ("negative replicas", with_change("serving.replicas", -1), None),
    ("bad pinned version", with_change("serving.modelVersion", "latest"), None),
    ("bad interval", with_change("monitoring.prometheus.interval", "soon"), None),
    ("unknown metric", with_change("training.qualityGate.metric", "auc"), None),
    ("negative backoff", with_change("training.backoffLimit", -1), None),
    ("bad quantity", with_change("training.resources", {"limits": {"cpu": "lots"}}), None),
    # Lower-case "mi" is no unit: the Deployment write would fail with a 422 long after admission.
    ("quantity unit", with_change("serving.resources", {"requests": {"memory": "512mi"}}), None),
    ("two units", with_change("serving.resources", {"limits": {"memory": "1GiB"}}), None),
    ("bare unit", with_change("storage.size", "Gi"), None),
    (
        "bad csv url",
        with_change("training.dataset", {"csv": {"url": "ftp://x/y.csv", "targetColumn": "y"}}),
        None,
    ),
    ("no dataset source", with_change("training.dataset", {}), api.Dataset.rules[0].message),
    (
        "two dataset sources",
        with_change(
            "training.dataset", {"builtin": "iris", "csv": {"path": "/d.csv", "targetColumn": "y"}}
        ),
        api.Dataset.rules[0].message,
    ),
    (
        "csv with url and path",
        with_change(
            "training.dataset",
            {"csv": {"path": "/d.csv", "url": "https://x/d.csv", "targetColumn": "y"}},
        ),
        api.CsvDataset.rules[0].message,
    ),
    (
        "threshold above 1",
        with_change("training.qualityGate.threshold", 1.5),
        api.QualityGate.rules[0].message,
    ),
    (
        "negative rmse threshold",
        with_change(
            "training",
            {
                **VALID_SPEC["training"],
                "dataset": {"builtin": "diabetes"},
                "estimator": "Ridge",
                "qualityGate": {"metric": "rmse", "threshold": -1},
            },
        ),
        api.QualityGate.rules[0].message,
    ),
    (
        "regression metric for a classifier",
        with_change("training.qualityGate.metric", "r2"),
        api.TrainingSpec.rules[0].message,
    ),
    (
        "classifier on diabetes",
        with_change("training.dataset.builtin", "diabetes"),
        api.TrainingSpec.rules[1].message,
    ),
    (
        "min above max replicas",
        with_change(
            "serving",
            {
                "autoscaling": {"minReplicas": 5, "maxReplicas": 2},
                "resources": {"requests": {"cpu": "100m"}},
            },
        ),
        api.Autoscaling.rules[0].message,
    ),
    (
        "autoscaling with no cpu request",
        with_change(
            "serving",
            {"autoscaling": {"maxReplicas": 4}, "resources": {"requests": {"memory": "256Mi"}}},
        ),
        api.ServingSpec.rules[0].message,
    ),
    (
        "autoscaling with no resources",
        with_change("serving", {"autoscaling": {"maxReplicas": 4}}),
        api.ServingSpec.rules[0].message,
    ),
    (
        "storage class with existing claim",
        with_change("storage", {"existingClaim": "shared", "storageClassName": "fast"}),
        api.StorageSpec.rules[0].message,
    ),
    (
        "s3 with existing claim",
        with_change("storage", {"s3": {"bucket": "models"}, "existingClaim": "shared"}),
        api.StorageSpec.rules[1].message,
    ),
    ("s3 bucket with capitals", with_change("storage", {"s3": {"bucket": "Models"}}), None),
    (
        "s3 prefix with a trailing slash",
        with_change("storage", {"s3": {"bucket": "models", "prefix": "team/"}}),
        None,
    ),
    (
        "s3 endpoint without a scheme",
        with_change("storage", {"s3": {"bucket": "models", "endpoint": "minio:9000"}}),
        None,
    ),
    (
        "training and a provided model",
        with_change("model", PROVIDED_MODEL),
        api.ModelDeploymentSpec.rules[0].message,
    ),
    (
        "neither training nor a model",
        {"serving": {"replicas": 2}},
        api.ModelDeploymentSpec.rules[0].message,
    ),
    (
        "a provided model with storage",
        {"model": PROVIDED_MODEL, "storage": {"size": "2Gi"}},
        api.ModelDeploymentSpec.rules[1].message,
    ),
    (
        "s3 settings for an https model",
        {"model": PROVIDED_MODEL | {"uri": "https://example.org/m.joblib", "region": "eu"}},
        api.ModelSource.rules[0].message,
    ),
    ("a provided model without its digest", {"model": {"uri": PROVIDED_MODEL["uri"]}}, None),
    ("a short digest", {"model": PROVIDED_MODEL | {"sha256": "ab12"}}, None),
    ("an upper-case digest", {"model": PROVIDED_MODEL | {"sha256": "A" * 64}}, None),
    ("a bucket prefix as a model", {"model": PROVIDED_MODEL | {"uri": "s3://models/iris/"}}, None),
    ("a model over ftp", {"model": PROVIDED_MODEL | {"uri": "ftp://example.org/m.joblib"}}, None),
    ("an MLflow alias", {"model": {"uri": "models:/churn@champion", "sha256": "a" * 64}}, None),
    ("an MLflow stage", {"model": {"uri": "models:/churn/Production", "sha256": "a" * 64}}, None),
    (
        "s3 settings for an MLflow model",
        {"model": PROVIDED_MODEL | {"uri": "models:/churn/3"}},
        api.ModelSource.rules[0].message,
    ),
    (
        "an MLflow server without a scheme",
        with_change("mlflow", {"trackingUri": "mlflow:5000"}),
        None,
    ),
    ("a search of nothing", with_change("training.search", {"parameters": {}}), None),
    ("an unknown parameter type", searching(max_depth={"type": "Integer", "low": 1}), None),
    (
        "choices for a range",
        searching(max_depth={"type": "Int", "low": 1, "high": 5, "choices": [1]}),
        None,
    ),
    ("a range without its end", searching(max_depth={"type": "Int", "low": 1}), None),
    ("no choices", searching(criterion={"type": "Categorical"}), None),
    (
        "an empty range",
        searching(max_depth={"type": "Int", "low": 5, "high": 5}),
        api.SearchParameter.rules[0].message,
    ),
    (
        "a range for choices",
        searching(criterion={"type": "Categorical", "choices": ["gini"], "low": 1}),
        api.SearchParameter.rules[0].message,
    ),
    (
        "a log scale from 0",
        searching(C={"type": "Float", "low": 0, "high": 10, "log": True}),
        api.SearchParameter.rules[1].message,
    ),
    (
        "a fractional Int",
        searching(max_depth={"type": "Int", "low": 1.5, "high": 5}),
        api.SearchParameter.rules[2].message,
    ),
    (
        "a regression metric to search a classifier",
        with_change(
            "training.search",
            {"metric": "rmse", "parameters": {"max_depth": {"type": "Int", "low": 1, "high": 5}}},
        ),
        api.TrainingSpec.rules[2].message,
    ),
    (
        "a search longer than the Job",
        with_change(
            "training.search",
            {
                "timeoutSeconds": 1800,
                "parameters": {"max_depth": {"type": "Int", "low": 1, "high": 5}},
            },
        ),
        api.TrainingSpec.rules[3].message,
    ),
    (
        "an alias MLflow keeps for versions",
        with_change("mlflow", {"trackingUri": "http://mlflow:5000", "championAlias": "v3"}),
        api.MlflowSpec.rules[0].message,
    ),
    (
        "an alias with a space",
        with_change("mlflow", {"trackingUri": "http://mlflow:5000", "championAlias": "a b"}),
        None,
    ),
    ("a cron minute of 75", with_change("training.schedule", "75 * * * *"), None),
    ("four cron fields", with_change("training.schedule", "0 3 * *"), None),
    ("a step of 0", with_change("training.schedule", "*/0 * * * *"), None),
    ("an interval for cron", with_change("training.schedule", "@every 5m"), None),
]

VALID: list[tuple[str, dict[str, Any]]] = [
    ("minimal", VALID_SPEC),
    ("no gate", with_change("training.qualityGate", None)),
    (
        "csv from url",
        with_change(
            "training.dataset", {"csv": {"url": "https://example.org/d.csv", "targetColumn": "y"}}
        ),
    ),
    (
        "regressor with r2 gate",
        with_change(
            "training",
            {
                "dataset": {"builtin": "diabetes"},
                "estimator": "Ridge",
                "qualityGate": {"metric": "r2", "threshold": -0.5},
            },
        ),
    ),
    ("pinned version", with_change("serving.modelVersion", "v0123456789ab")),
    (
        "integer quantities",
        with_change("serving.resources", {"limits": {"cpu": 2, "memory": "1Gi"}}),
    ),
    (
        "every quantity form",
        with_change(
            "serving.resources",
            {"requests": {"cpu": "0.5", "memory": "1e9"}, "limits": {"cpu": ".75", "memory": "2G"}},
        ),
    ),
    ("scale to zero", with_change("serving.replicas", 0)),
    (
        "object storage",
        with_change(
            "storage",
            {
                "s3": {
                    "bucket": "ml-models.prod",
                    "prefix": "team-a/iris",
                    "endpoint": "http://minio.storage:9000",
                    "region": "eu-west-1",
                    "credentialsSecret": "s3-credentials",
                }
            },
        ),
    ),
    ("a provided model in a bucket", {"model": PROVIDED_MODEL}),
    (
        "a model version in MLflow",
        {
            "model": {"uri": "models:/team-a.churn/12", "sha256": "a" * 64},
            "mlflow": {"trackingUri": "http://mlflow.mlflow:5000"},
        },
    ),
    (
        "tracked in MLflow",
        with_change(
            "mlflow", {"trackingUri": "https://mlflow.example.org", "credentialsSecret": "mlflow"}
        ),
    ),
    (
        "a search",
        with_change(
            "training.search",
            {
                "trials": 30,
                "timeoutSeconds": 600,
                "metric": "roc_auc",
                "folds": 5,
                "parameters": {
                    "max_depth": {"type": "Int", "low": 2, "high": 12, "step": 2},
                    "max_features": {"type": "Float", "low": 0.1, "high": 1.0},
                    "min_impurity_decrease": {
                        "type": "Float",
                        "low": 1e-6,
                        "high": 0.1,
                        "log": True,
                    },
                    "criterion": {"type": "Categorical", "choices": ["gini", "entropy"]},
                    "bootstrap": {"type": "Categorical", "choices": [True, False]},
                    "max_leaf_nodes": {"type": "Categorical", "choices": [8, 16.5, "none"]},
                },
            },
        ),
    ),
    ("nightly on weekdays", with_change("training.schedule", "30 2 * * MON-FRI")),
    ("every quarter hour in May", with_change("training.schedule", "*/15 8-18 1,15 may *")),
    ("daily", with_change("training.schedule", "@daily")),
    (
        "a provided model at a URL, autoscaled",
        {
            "model": {
                "uri": "https://models.example.org/iris/model.joblib?v=3",
                "sha256": "f" * 64,
            },
            "serving": {
                "autoscaling": {"maxReplicas": 4},
                "resources": {"requests": {"cpu": "100m"}},
            },
        },
    ),
]


def manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def test_committed_crd_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == crd.render(), "run: python -m modelops_operator.crd > " + str(
        CRD_FILE.relative_to(ROOT)
    )


def test_every_rule_is_covered_by_an_invalid_case() -> None:
    models = [
        api.CsvDataset,
        api.Dataset,
        api.QualityGate,
        api.SearchParameter,
        api.TrainingSpec,
        api.Autoscaling,
        api.ServingSpec,
        api.StorageSpec,
        api.ModelSource,
        api.MlflowSpec,
        api.ModelDeploymentSpec,
    ]
    rule_messages = {rule.message for model in models for rule in model.rules}
    assert rule_messages == {message for _, _, message in INVALID if message}


def test_every_schema_field_has_a_description() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for name, child in node.get("properties", {}).items():
            if "description" not in child and path not in ("", ".status.conditions[]"):
                missing.append(f"{path}.{name}")
            missing += walk(child, f"{path}.{name}")
        if "items" in node:
            missing += walk(node["items"], f"{path}[]")
        return missing

    schema = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert walk(schema["properties"]["spec"], ".spec") == []


@pytest.mark.parametrize("case,spec,message", INVALID, ids=[case for case, _, _ in INVALID])
def test_pydantic_rejects(case: str, spec: dict[str, Any], message: str | None) -> None:
    with pytest.raises(pydantic.ValidationError) as rejected:
        api.ModelDeploymentSpec.model_validate(spec)
    if message:
        assert message in str(rejected.value)


@pytest.mark.parametrize("case,spec", VALID, ids=[case for case, _ in VALID])
def test_pydantic_accepts(case: str, spec: dict[str, Any]) -> None:
    api.ModelDeploymentSpec.model_validate(spec)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_samples_parse(sample: Path) -> None:
    for document in yaml.safe_load_all(sample.read_text()):
        if document["kind"] == "ModelDeployment":
            api.ModelDeploymentSpec.model_validate(document["spec"])


def test_name_rule() -> None:
    assert api.NAME_RULE.check("iris-v2")
    assert not api.NAME_RULE.check("2iris")
    assert not api.NAME_RULE.check("x" * 41)


@pytest.mark.controlplane
@pytest.mark.usefixtures("crds_installed")
class TestAdmission:
    """The same cases through the real apiserver (server-side dry run)."""

    def dry_run(self, control_plane: ControlPlane, namespace: str, text: str) -> tuple[int, str]:
        done = control_plane.kubectl(
            "-n", namespace, "apply", "--dry-run=server", "-f", "-", stdin=text, check=False
        )
        return done.returncode, done.stderr

    @pytest.mark.parametrize("case,spec,message", INVALID, ids=[case for case, _, _ in INVALID])
    def test_apiserver_rejects(
        self,
        control_plane: ControlPlane,
        namespace: str,
        case: str,
        spec: dict[str, Any],
        message: str | None,
    ) -> None:
        code, stderr = self.dry_run(control_plane, namespace, manifest("m", spec))
        assert code != 0, f"{case} was admitted"
        if message:
            assert message in stderr

    @pytest.mark.parametrize("case,spec", VALID, ids=[case for case, _ in VALID])
    def test_apiserver_accepts(
        self, control_plane: ControlPlane, namespace: str, case: str, spec: dict[str, Any]
    ) -> None:
        code, stderr = self.dry_run(control_plane, namespace, manifest("m", spec))
        assert code == 0, stderr

    @pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
    def test_samples_are_admitted(
        self, control_plane: ControlPlane, namespace: str, sample: Path
    ) -> None:
        code, stderr = self.dry_run(control_plane, namespace, sample.read_text())
        assert code == 0, stderr

    def test_bad_name_is_rejected(self, control_plane: ControlPlane, namespace: str) -> None:
        code, stderr = self.dry_run(control_plane, namespace, manifest("x" * 41, VALID_SPEC))
        assert code != 0
        assert api.NAME_RULE.message in stderr

    def test_defaults_agree(self, control_plane: ControlPlane, namespace: str) -> None:
        """What the apiserver stores after defaulting parses to the same model as the input."""
        spec = with_change(
            "serving",
            {"autoscaling": {"maxReplicas": 3}, "resources": {"requests": {"cpu": "100m"}}},
        )
        done = control_plane.kubectl(
            "-n",
            namespace,
            "apply",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            stdin=manifest("m", spec),
        )
        stored = json.loads(done.stdout)["spec"]
        assert api.ModelDeploymentSpec.model_validate(
            stored
        ) == api.ModelDeploymentSpec.model_validate(spec)


def test_vocabularies_match_the_trainers() -> None:
    """The operator admits exactly what the trainer can train (separate images, one contract)."""
    from modelops_trainer.datasets import BUILTIN
    from modelops_trainer.estimators import ESTIMATORS, task_of

    assert set(api.CLASSIFIERS) == {
        name for name in ESTIMATORS if task_of(name) == "classification"
    }
    assert set(api.REGRESSORS) == {name for name in ESTIMATORS if task_of(name) == "regression"}
    assert set(api.CLASSIFICATION_DATASETS) == {
        name for name, (_, task) in BUILTIN.items() if task == "classification"
    }
    assert set(api.REGRESSION_DATASETS) == {
        name for name, (_, task) in BUILTIN.items() if task == "regression"
    }
    assert set(typing.get_args(api.Estimator)) == set(api.CLASSIFIERS) | set(api.REGRESSORS)


def test_search_metrics_and_defaults_match_the_trainers() -> None:
    from modelops_trainer import search, spec

    assert set(search.SCORERS["classification"]) == set(api.CLASSIFICATION_METRICS)
    assert set(search.SCORERS["regression"]) == set(api.REGRESSION_METRICS)
    defaults = api.Search.model_validate(
        {"parameters": {"C": {"type": "Float", "low": 1, "high": 2}}}
    )
    assert (defaults.trials, defaults.folds) == (
        spec.DEFAULT_SEARCH_TRIALS,
        spec.DEFAULT_SEARCH_FOLDS,
    )


def test_the_seeds_admitted_are_the_seeds_the_trainer_takes() -> None:
    from modelops_trainer.spec import MAX_RANDOM_SEED

    api.TrainingSpec.model_validate({**VALID_SPEC["training"], "randomSeed": MAX_RANDOM_SEED})
    with pytest.raises(pydantic.ValidationError, match="less than or equal"):
        api.TrainingSpec.model_validate(
            {**VALID_SPEC["training"], "randomSeed": MAX_RANDOM_SEED + 1}
        )


def test_a_search_the_operator_passes_on_is_the_version_the_trainer_makes() -> None:
    """The operator's copy (defaults filled in) and the resource as written give one version."""
    from modelops_operator import builders
    from modelops_trainer.spec import parse_spec

    written = VALID_SPEC["training"] | {
        "search": {
            "parameters": {
                "max_depth": {"type": "Int", "low": 2, "high": 8},
                "max_features": {"type": "Categorical", "choices": ["sqrt", 0.5, None]},
            }
        }
    }
    passed_on = builders.trainer_spec(api.TrainingSpec.model_validate(written))
    assert parse_spec(passed_on).model_inputs() == parse_spec(written).model_inputs()
