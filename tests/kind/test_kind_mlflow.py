"""MLflow on a real node: deploy/samples/mlflow runs an MLflow server in the cluster and the
iris sample tracked in it; the training Job's pod logs its run and registers the model there;
then that registered version is served by another ModelDeployment through the registry
(churn-registered.yaml), with no Job, pinned to its digest. The wine sample's hyperparameter
search runs in its Job's pod and logs each trial as a nested run, and the registry's champion
alias follows the serving version through promotion and a rollback pin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_cluster import get_json, predict_script, run_python, sample_namespace
from modelops_envtest import kind
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
SAMPLE = SAMPLES / "mlflow"
WINE = SAMPLES / "wine.yaml"
TRACKED = "iris-tracked"
REGISTERED = "churn"
READY_TIMEOUT = 600


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    return sample_namespace(cluster, "mlflow", kind.mlflow_image(), SAMPLE)


def ready(cluster: KindCluster, namespace: str, name: str, replicas: int) -> dict[str, Any]:
    def served() -> dict[str, Any] | None:
        observed = get_json(cluster, "-n", namespace, "mdep", name).get("status") or {}
        assert observed.get("phase") != "Failed", observed.get("message")
        done = observed.get("phase") == "Ready" and observed.get("readyReplicas") == replicas
        return observed if done else None

    found: dict[str, Any] = wait_until(served, timeout=READY_TIMEOUT, what=f"{name} Ready")
    return found


def test_the_job_logs_its_run_and_the_registered_version_serves(
    cluster: KindCluster, namespace: str
) -> None:
    trained = ready(cluster, namespace, TRACKED, 1)["model"]
    logged = trained["mlflow"]
    assert logged["modelUri"] == f"models:/{namespace}.{TRACKED}/1"
    assert logged["runUrl"].startswith("http://mlflow:5000/#/experiments/")

    # In the cluster, as a user's notebook would: the run's parameters and metrics, and the
    # digest of the registered version's model file, to pin it.
    script = f"""
        import hashlib, json, pathlib, mlflow
        mlflow.set_tracking_uri("http://mlflow:5000")
        run = mlflow.MlflowClient().get_run({logged["runId"]!r})
        folder = pathlib.Path(mlflow.artifacts.download_artifacts({logged["modelUri"]!r},
                                                                 dst_path="/tmp/model"))
        pickled = next(p for p in folder.iterdir() if p.stem == "model")
        print(json.dumps({{"params": run.data.params, "metrics": run.data.metrics,
                          "sha256": hashlib.sha256(pickled.read_bytes()).hexdigest()}}))
    """
    seen = json.loads(run_python(cluster, namespace, script).strip().splitlines()[-1])
    assert seen["params"]["estimator"] == "RandomForestClassifier"
    assert seen["metrics"]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])

    manifest = yaml.safe_load((SAMPLE / f"{REGISTERED}-registered.yaml").read_text())
    manifest["spec"]["model"] = {"uri": logged["modelUri"], "sha256": seen["sha256"]}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))
    served = ready(cluster, namespace, REGISTERED, 2)["model"]
    assert served["origin"] == "Provided"
    jobs = get_json(cluster, "-n", namespace, "jobs", "-l", f"modelops.dev/model={REGISTERED}")
    assert jobs["items"] == []

    url = f"http://{REGISTERED}.{namespace}.svc.cluster.local:8080/predict"
    answer = json.loads(run_python(cluster, namespace, predict_script(url, [[5.1, 3.5, 1.4, 0.2]])))
    assert answer["predictions"] == ["setosa"]


def test_the_wine_samples_search_runs_in_its_job_and_logs_each_trial(
    cluster: KindCluster, namespace: str
) -> None:
    manifest = yaml.safe_load(WINE.read_text())
    manifest["spec"]["mlflow"] = {"trackingUri": "http://mlflow:5000"}
    # The autoscaling test owns the sample's CPU story; one replica serves here.
    manifest["spec"]["serving"] = {"replicas": 1}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))
    trained = ready(cluster, namespace, "wine", 1)["model"]
    found = trained["search"]
    assert (found["trials"], found["failedTrials"], found["metric"]) == (20, 0, "f1_macro")
    assert set(found["parameters"]) == {"learning_rate", "max_depth", "l2_regularization"}

    script = f"""
        import json, mlflow
        client = mlflow.MlflowClient("http://mlflow:5000")
        parent = client.get_run({trained["mlflow"]["runId"]!r})
        trials = client.search_runs(
            [parent.info.experiment_id],
            "tags.mlflow.parentRunId = '" + parent.info.run_id + "'",
        )
        print(json.dumps({{"names": sorted(run.info.run_name for run in trials),
                          "best": max(run.data.metrics["cv_f1_macro"] for run in trials)}}))
    """
    seen = json.loads(run_python(cluster, namespace, script).strip().splitlines()[-1])
    assert sorted(seen["names"]) == sorted(f"trial-{n}" for n in range(20))
    assert seen["best"] == pytest.approx(found["score"])

    # The champion alias follows what serves: the first version, the next one trained, and the
    # first again when a pin rolls back to it.
    first = champion(cluster, namespace, "wine", 1)
    manifest["spec"]["training"]["randomSeed"] = 8
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))
    champion(cluster, namespace, "wine", 2)
    manifest["spec"]["serving"]["modelVersion"] = first["version"]
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))
    assert champion(cluster, namespace, "wine", 1)["version"] == first["version"]


def champion(cluster: KindCluster, namespace: str, name: str, registered: int) -> dict[str, Any]:
    """The serving version once status and the MLflow registry agree that it is the champion:
    registered version `registered` of the model. Its record."""

    def aliased() -> dict[str, Any] | None:
        model = get_json(cluster, "-n", namespace, "mdep", name)["status"]["model"]
        mlflow = model["mlflow"]
        assert "aliasProblem" not in mlflow, mlflow["aliasProblem"]
        wanted = mlflow["modelUri"].endswith(f"/{registered}") and mlflow.get("alias")
        return model if wanted == "champion" else None

    record: dict[str, Any] = wait_until(
        aliased, timeout=READY_TIMEOUT, what=f"version {registered} of {name} the champion"
    )
    script = f"""
        import mlflow
        client = mlflow.MlflowClient("http://mlflow:5000")
        print(client.get_model_version_by_alias({namespace + "." + name!r}, "champion").version)
    """
    assert run_python(cluster, namespace, script).strip().splitlines()[-1] == str(registered)
    return record
