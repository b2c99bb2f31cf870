"""Whole lifecycles of ModelDeployments against the real control plane and the real operator."""

from __future__ import annotations

import copy
import datetime
import json
import time
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
from conftest import (  # type: ignore[import-not-found]
    Models,
    configmap_data,
    dashboards,
    deploy_to_ready,
    registered,
    sample,
    scrape_job_names,
    serve_to_ready,
    taken_over,
)
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.waiting import wait_until
from modelops_operator import api, builders, reconcile
from modelops_operator.kube import Kube
from modelops_operator.monitoring import prometheus
from modelops_operator.settings import Settings
from modelops_trainer import train
from sklearn.datasets import load_iris

pytestmark = pytest.mark.controlplane


def train_iris_without_retries(models: Models) -> tuple[dict[str, Any], str]:
    """The iris sample with backoffLimit 0, applied; it and its training Job's name."""
    manifest = sample("iris")
    manifest["spec"]["training"]["backoffLimit"] = 0
    models.apply(manifest)
    return manifest, models.training_job("iris")


def ready_events(models: Models, name: str) -> list[dict[str, Any]]:
    """The Events of the model's phase change to Ready (kopf posts them in the background)."""
    found = models.kubectl(
        "get",
        "events",
        "--field-selector",
        f"involvedObject.name={name},reason=Ready",
        "-o",
        "json",
    )
    return list(json.loads(found.stdout)["items"])


def test_iris_sample_reaches_ready(models: Models, kubelet: Kubelet, trained: Any) -> None:
    status = deploy_to_ready(models, kubelet, trained, sample("iris"))
    summary = trained(sample("iris")["spec"]["training"], "iris")
    assert status["model"]["version"] == summary["version"]
    assert status["model"]["sha256"] == summary["sha256"]
    assert status["model"]["score"].startswith("accuracy=")
    assert status["readyReplicas"] == 2
    assert status["endpoint"] == f"http://iris.{models.namespace}.svc.cluster.local:8080"
    assert status["grpcEndpoint"] == f"iris.{models.namespace}.svc.cluster.local:8081"
    assert status["page"] == (
        f"kubectl -n {models.namespace} port-forward service/iris 8080, "
        "then open http://localhost:8080/"
    )
    ready = models.condition("iris", "Ready")
    assert (
        ready["status"] == "True"
        and ready["observedGeneration"] == models.get("iris")["metadata"]["generation"]
    )
    # kubectl wait works on the condition
    models.kubectl("wait", "--for=condition=Ready", "mdep/iris", "--timeout=5s")
    # The serving Deployment carries what the server needs to verify the artifact.
    deployment = models.kubectl("get", "deployment", "iris-server", "-o", "json").stdout
    assert summary["sha256"] in deployment and summary["artifactPath"] in deployment
    # Its Events name their poster ("From" in kubectl describe): the operator, not "kopf".
    events = wait_until(lambda: ready_events(models, "iris"), what="the Ready Event")
    assert {(event["reportingComponent"], event["source"]["component"]) for event in events} == {
        ("modelops-operator", "modelops-operator")
    }


def test_kubectl_get_shows_the_columns(models: Models, kubelet: Kubelet, trained: Any) -> None:
    deploy_to_ready(models, kubelet, trained, sample("diabetes"))
    header, row = models.kubectl("get", "mdep").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "VERSION", "SCORE", "READY", "ENDPOINT", "AGE"]
    cells = row.split()
    assert cells[:2] == ["diabetes", "Ready"]
    assert cells[2].startswith("v") and cells[3].startswith("r2=") and cells[4] == "1"
    assert cells[5].startswith("http://diabetes.")


def test_trainer_failure_fails_the_resource(models: Models, kubelet: Kubelet) -> None:
    _, job = train_iris_without_retries(models)
    kubelet.fail_training(models.namespace, job, "error: hyperparameter 'max_depth' must be an int")
    status = models.wait_for_phase("iris", "Failed")
    assert "hyperparameter 'max_depth' must be an int" in status["message"]
    trained_condition = models.condition("iris", "Trained")
    assert trained_condition["reason"] == "TrainingFailed"
    wait_until(
        lambda: all(
            reason
            in models.kubectl(
                "get", "events", "--field-selector", "involvedObject.name=iris"
            ).stdout
            for reason in ("Failed", "TrainingStarted")
        ),
        what="the TrainingStarted and Failed Events",
    )


def test_below_threshold_keeps_the_old_model_serving(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    first = deploy_to_ready(models, kubelet, trained, sample("iris"))
    retrain = sample("iris")
    retrain["spec"]["training"]["hyperparameters"] = {"n_estimators": 1, "max_depth": 1}
    retrain["spec"]["training"]["qualityGate"]["threshold"] = 0.999
    models.apply(retrain)
    wait_until(
        lambda: (
            models.status("iris").get("training", {}).get("jobName") != first["training"]["jobName"]
        )
    )
    kubelet.finish_training(
        models.namespace, models.training_job("iris"), trained(retrain["spec"]["training"], "iris")
    )
    status = models.wait_for_phase("iris", "Failed")
    assert models.condition("iris", "Trained")["reason"] == "BelowThreshold"
    assert status["model"]["version"] == first["model"]["version"]
    assert f"{first['model']['version']} keeps serving" in status["message"]
    assert models.condition("iris", "Deployed")["status"] == "True"
    image_env = models.kubectl(
        "get", "deployment", "iris-server", "-o", "jsonpath={.spec.template.spec.containers[0].env}"
    ).stdout
    assert first["model"]["sha256"] in image_env


def test_training_change_retrains_and_rolls_out_then_pin_rolls_back(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    first = deploy_to_ready(models, kubelet, trained, sample("wine"))
    changed = sample("wine")
    changed["spec"]["training"]["randomSeed"] = 8
    second = deploy_to_ready(models, kubelet, trained, changed)
    assert second["model"]["version"] != first["model"]["version"]
    assert [m["version"] for m in second["history"]] == [
        second["model"]["version"],
        first["model"]["version"],
    ]
    assert len(models.jobs("wine")) == 2

    pinned = copy.deepcopy(changed)
    pinned["spec"]["serving"]["modelVersion"] = first["model"]["version"]
    models.apply(pinned)
    kubelet.serve_until(
        models.namespace,
        "wine",
        lambda: (
            models.status("wine").get("model", {}).get("version") == first["model"]["version"]
            and models.status("wine").get("phase") == "Ready"
        ),
        what="rolled back and Ready",
    )
    assert len(models.jobs("wine")) == 2, "a rollback never retrains"
    version_label = models.kubectl(
        "get",
        "deployment",
        "wine-server",
        "-o",
        "jsonpath={.metadata.labels.modelops\\.dev/version}",
    ).stdout
    assert version_label == first["model"]["version"]

    # The page's history: each version's last start of service, the serving one's since the
    # rollback's rollout completed, in the ConfigMap the serving pods mount.
    rolled_back = models.status("wine")
    served = {entry["version"]: entry.get("servedSince") for entry in rolled_back["history"]}
    assert rolled_back["model"]["servedSince"] == served[first["model"]["version"]]
    # A new period: later than its first, and than the version it took over from.
    assert served[first["model"]["version"]] > first["model"]["servedSince"]
    assert served[first["model"]["version"]] >= served[second["model"]["version"]]
    assert served[second["model"]["version"]] == second["model"]["servedSince"]

    def page_history() -> dict[str, Any]:
        data = configmap_data(models.cp, models.namespace, "wine-history")
        kept: dict[str, Any] = json.loads(data.get("history.json", "{}"))
        return kept

    wait_until(
        lambda: page_history().get("servingSince") == rolled_back["model"]["servedSince"],
        timeout=30,
        what="the history ConfigMap to say since when the rolled-back version serves",
    )
    kept = page_history()
    assert kept["serving"] == first["model"]["version"]
    assert [(v["version"], v["servedSince"], v["score"]) for v in kept["versions"]] == [
        (entry["version"], entry["servedSince"], entry["score"]) for entry in rolled_back["history"]
    ]
    pod_spec = json.loads(models.kubectl("get", "deployment", "wine-server", "-o", "json").stdout)[
        "spec"
    ]["template"]["spec"]
    assert {
        "name": "history",
        "configMap": {"name": "wine-history", "optional": True, "defaultMode": 420},
    } in pod_spec["volumes"]


def test_serving_change_updates_without_retraining(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("diabetes"))
    scaled = sample("diabetes")
    scaled["spec"]["serving"]["replicas"] = 3
    models.apply(scaled)
    kubelet.serve_until(
        models.namespace,
        "diabetes",
        lambda: models.status("diabetes").get("readyReplicas") == 3,
        what="3 ready replicas",
    )
    assert len(models.jobs("diabetes")) == 1


def test_pinning_an_unknown_version_fails_clearly(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("diabetes"))
    pinned = sample("diabetes")
    pinned["spec"]["serving"]["modelVersion"] = "v000000000000"
    models.apply(pinned)
    status = models.wait_for_phase("diabetes", "Failed")
    assert "v000000000000 is not a promoted version" in status["message"]
    assert models.kubectl("get", "deployment", "diabetes-server").returncode == 0


def test_autoscaling_creates_and_removes_the_hpa(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("wine"))
    hpa = models.kubectl("get", "hpa", "wine-server", "-o", "json").stdout
    assert '"maxReplicas": 4' in hpa
    fixed = sample("wine")
    fixed["spec"]["serving"] = {"replicas": 1}
    models.apply(fixed)
    wait_until(
        lambda: models.kubectl("get", "hpa", "wine-server", check=False).returncode != 0,
        what="the HPA to go",
    )


def test_deletion_leaves_nothing_behind(
    models: Models, kubelet: Kubelet, trained: Any, control_plane: Any, monitoring_namespace: str
) -> None:
    """Every child goes by garbage collection (the dashboard, the disruption budget and the
    network policy among them), and the scrape job, in a file shared with other models, by the
    operator."""
    deploy_to_ready(models, kubelet, trained, sample("iris"))
    job = prometheus.scrape_job_name(models.namespace, "iris")
    # Each check below could see what it says is gone.
    wait_until(lambda: job in scrape_job_names(control_plane), what="iris's scrape job")
    assert dashboards(control_plane, models.namespace), "iris's dashboard"
    kinds = "jobs,deployments,services,pvc,hpa,pods,poddisruptionbudgets,networkpolicies,configmaps"
    children = models.kubectl("get", kinds, "-l", "modelops.dev/model=iris", "-o", "name").stdout
    assert "poddisruptionbudget" in children and "networkpolicy" in children

    models.kubectl("delete", "mdep", "iris", "--timeout=30s")

    def nothing_left() -> bool:
        out = models.kubectl("get", kinds, "-l", "modelops.dev/model=iris", "-o", "name").stdout
        return not out.strip() and not dashboards(control_plane, models.namespace)

    wait_until(nothing_left, what="garbage collection of iris's children")
    assert job not in scrape_job_names(control_plane)


def test_deletion_does_not_hang_when_children_are_already_gone(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("wine"))
    models.kubectl("delete", "deployment/wine-server", "service/wine", "--wait=false")
    models.kubectl("delete", "mdep", "wine", "--timeout=30s")
    assert models.kubectl("get", "mdep", "wine", check=False).returncode != 0


def test_operator_restart_mid_training_makes_no_second_job(
    models: Models, kubelet: Kubelet, trained: Any, operator: Any
) -> None:
    models.apply(sample("iris"))
    job = models.training_job("iris")
    operator.stop(kill=True)
    operator.start()
    kubelet.finish_training(
        models.namespace, job, trained(sample("iris")["spec"]["training"], "iris")
    )
    models.wait_for_phase("iris", "Deploying")
    assert models.jobs("iris") == [f"job.batch/{job}"]


def test_a_second_replica_takes_over_and_the_first_pauses(
    control_plane: Any, models: Models, kubelet: Kubelet, trained: Any, operator: Any
) -> None:
    with taken_over(control_plane, operator) as newer:
        # Only the newer replica acts now, and it does act.
        paused_at = len(operator.log())
        deploy_to_ready(models, kubelet, trained, sample("diabetes"))
        assert "diabetes" not in operator.log()[paused_at:]
        assert "diabetes" in newer.log()


def test_a_write_the_apiserver_refuses_reaches_status(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """Admission cannot see it (each quantity is valid), the apiserver's Deployment validation
    does: a request above its limit. The trained model is refused serving, and status says why."""
    manifest = sample("iris")
    manifest["spec"]["serving"]["resources"] = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    models.apply(manifest)
    job = models.training_job("iris")
    kubelet.finish_training(models.namespace, job, trained(manifest["spec"]["training"], "iris"))
    status = models.wait_for_phase("iris", "Failed")
    assert status["message"].startswith("the apiserver refused a write: ")
    assert "must be less than or equal to cpu limit" in status["message"], status["message"]
    assert models.condition("iris", "Ready")["reason"] == "WriteRefused"
    # The Event is posted after the status is written.
    wait_until(
        lambda: (
            "must be less than or equal to cpu limit"
            in models.kubectl(
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=iris,reason=Failed",
                "-o",
                "json",
            ).stdout
        ),
        what="the Failed Event with the apiserver's words",
    )


def test_the_retrain_annotation_retries_a_failed_run_and_trains_again(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    manifest, failed_job = train_iris_without_retries(models)
    kubelet.fail_training(models.namespace, failed_job, "cannot download CSV: connection reset")
    models.wait_for_phase("iris", "Failed")

    def retrained(token: str, previous_job: str) -> str:
        models.kubectl("annotate", "--overwrite", "mdep", "iris", f"modelops.dev/retrain={token}")
        return str(
            wait_until(
                lambda: (
                    (job := models.status("iris").get("training", {}).get("jobName"))
                    != previous_job
                    and job
                ),
                what=f"a training Job for retrain token {token}",
            )
        )

    retry_job = retrained("1", failed_job)
    summary = trained(manifest["spec"]["training"], "iris")
    kubelet.finish_training(models.namespace, retry_job, summary)
    kubelet.serve_until(
        models.namespace,
        "iris",
        lambda: models.status("iris").get("phase") == "Ready",
        what="the retried model Ready",
    )

    # New data at the same URL: the same spec trains again, and the new version is served.
    fresh_job = retrained("2", retry_job)
    new_data = trained(manifest["spec"]["training"] | {"randomSeed": 99}, "iris")
    kubelet.finish_training(models.namespace, fresh_job, new_data)
    kubelet.serve_until(
        models.namespace,
        "iris",
        lambda: (
            models.status("iris").get("model", {}).get("version") == new_data["version"]
            and models.status("iris").get("phase") == "Ready"
        ),
        what="the retrained version served",
    )
    assert [entry["version"] for entry in models.status("iris")["history"]] == [
        new_data["version"],
        summary["version"],
    ]
    # The failed run's Job is outside the history: it goes once a later run ends.
    assert sorted(models.jobs("iris")) == sorted(
        f"job.batch/{job}" for job in (retry_job, fresh_job)
    )
    assert [entry["jobName"] for entry in models.status("iris")["history"]] == [
        fresh_job,
        retry_job,
    ]

    # The first token again: its run's version was promoted once, and a newer one since, which
    # stays. Nothing trains.
    models.kubectl("annotate", "--overwrite", "mdep", "iris", "modelops.dev/retrain=1")
    again = wait_until(
        lambda: (
            (now := models.status("iris")).get("training", {}).get("jobName") == retry_job and now
        ),
        what="the first token's run seen again",
    )
    assert again["phase"] == "Ready" and again["model"]["version"] == new_data["version"]
    trained_condition = models.condition("iris", "Trained")
    assert f"and {new_data['version']} since, which stays" in trained_condition["message"]
    assert sorted(models.jobs("iris")) == sorted(
        f"job.batch/{job}" for job in (retry_job, fresh_job)
    )


def test_a_spec_change_stops_the_run_it_supersedes(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """Left running, the older run could end after the newer one and prune by the history it
    started with: the newer run's version among what it deletes."""
    manifest = sample("iris")
    models.apply(manifest)
    first_job = models.training_job("iris")
    wait_until(lambda: kubelet.pods(models.namespace, f"job-name={first_job}"))
    changed = copy.deepcopy(manifest)
    changed["spec"]["training"]["hyperparameters"] = {"n_estimators": 1, "max_depth": 1}
    changed["spec"]["training"]["qualityGate"]["threshold"] = 0.5
    models.apply(changed)
    second_job = models.training_job("iris")
    assert second_job != first_job
    wait_until(
        lambda: f"job.batch/{first_job}" not in models.jobs("iris"),
        what="the superseded Job to be stopped",
    )
    summary = trained(changed["spec"]["training"], "iris")
    kubelet.finish_training(models.namespace, second_job, summary)
    assert serve_to_ready(models, kubelet, "iris")["model"]["version"] == summary["version"]


def test_a_storage_size_change_the_claim_cannot_take_is_reported(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """The test control plane has no provisioner: the claim stays unbound, and the apiserver
    refuses to resize an unbound claim, in its own words."""
    manifest = sample("iris")
    deploy_to_ready(models, kubelet, trained, manifest)
    manifest["spec"]["storage"] = {"size": "3Gi"}
    models.apply(manifest)
    status = models.wait_for_phase("iris", "Failed")
    assert status["message"].startswith("the apiserver refused a write: "), status["message"]
    assert "PersistentVolumeClaim" in status["message"] and "iris-models" in status["message"]
    assert status["model"]["version"], "the model already serving is still reported"


def test_an_evicted_training_pod_does_not_use_up_the_retries(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    manifest, job = train_iris_without_retries(models)
    evicted = kubelet.evict_training(models.namespace, job)
    wait_until(
        lambda: any(
            pod.metadata.name != evicted
            for pod in kubelet.pods(models.namespace, f"job-name={job}")
        ),
        what="a pod to replace the evicted one",
    )
    kubelet.finish_training(models.namespace, job, trained(manifest["spec"]["training"], "iris"))
    models.wait_for_phase("iris", "Deploying")
    assert models.jobs("iris") == [f"job.batch/{job}"]


PROVIDED = {"uri": "https://models.example.org/iris/model.joblib", "sha256": "d" * 64}


def provided_manifest(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": PROVIDED, "serving": {"replicas": replicas}},
    }


def test_a_provided_model_is_served_and_monitored_with_no_job_and_no_claim(
    models: Models, kubelet: Kubelet, monitoring_namespace: str
) -> None:
    models.apply(provided_manifest("byo"))
    status = serve_to_ready(models, kubelet, "byo")
    version = "v" + "d" * 12
    served = status["model"].pop("servedSince")
    assert status["model"] == {
        "version": version,
        "sha256": PROVIDED["sha256"],
        "artifactPath": PROVIDED["uri"],
        "origin": "Provided",
        "metrics": {},
    }
    assert [entry["servedSince"] for entry in status["history"]] == [served]
    assert "training" not in status
    assert status["message"] == f"serving {version}, 2/2 replicas ready"
    assert models.condition("byo", "Trained")["reason"] == "ModelProvided"
    assert models.condition("byo", "Monitored")["status"] == "True"
    assert registered(models.cp, models.namespace) == ([f"modelops/{models.namespace}/byo"], 1)
    assert models.jobs("byo") == []
    assert models.kubectl("get", "pvc", "-o", "name").stdout.strip() == ""
    deployment = json.loads(models.kubectl("get", "deployment", "byo-server", "-o", "json").stdout)
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetch["args"][:2] == ["--from", PROVIDED["uri"]]


def test_a_trained_model_switched_to_a_provided_one_keeps_its_version_for_rollback(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    trained_status = deploy_to_ready(models, kubelet, trained, sample("iris"))
    manifest = sample("iris")
    manifest["spec"] = provided_manifest("iris")["spec"]
    models.apply(manifest)
    status = serve_to_ready(models, kubelet, "iris")
    assert [entry["version"] for entry in status["history"]] == [
        "v" + "d" * 12,
        trained_status["model"]["version"],
    ]
    # The Job that made the version still in history stays: it is its provenance.
    assert models.jobs("iris") == [f"job.batch/{trained_status['training']['jobName']}"]


def write_iris_csv(path: Path, rows: slice) -> None:
    iris = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,label"] + [
        ",".join([*map(str, features), str(iris.target_names[target])])
        for features, target in zip(iris.data[rows], iris.target[rows], strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def train_as_the_job_would(models: Models, job: str, root: Path) -> dict[str, Any]:
    """The real trainer run on the spec the Job carries (what its pod would do)."""
    found = json.loads(models.kubectl("get", "job", job, "-o", "json").stdout)
    env = found["spec"]["template"]["spec"]["containers"][0]["env"]
    spec = json.loads(next(v["value"] for v in env if v["name"] == "MODELOPS_TRAINING_SPEC"))
    return train(spec, root, "scheduled", models.namespace)


def test_a_scheduled_retrain_promotes_the_version_new_data_makes(
    models: Models, kubelet: Kubelet, tmp_path: Path
) -> None:
    csv = tmp_path / "flowers.csv"
    write_iris_csv(csv, slice(0, 150, 2))
    manifest = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "scheduled"},
        "spec": {
            "training": {
                "dataset": {"csv": {"path": str(csv), "targetColumn": "label"}},
                "estimator": "LogisticRegression",
                "hyperparameters": {"max_iter": 500},
                "qualityGate": {"metric": "accuracy", "threshold": 0.8},
                "schedule": "* * * * *",
            },
            "serving": {"replicas": 1},
        },
    }
    # The first run is Ready within the minute it starts in: the schedule's next run would
    # otherwise start before it is (the phase then says Training, rightly).
    time.sleep((62 - datetime.datetime.now(datetime.UTC).second) % 60)
    models.apply(manifest)
    first_job = models.training_job("scheduled")
    first = train_as_the_job_would(models, first_job, tmp_path / "out")
    kubelet.finish_training(models.namespace, first_job, first)
    status = serve_to_ready(models, kubelet, "scheduled")
    assert status["model"]["version"] == first["version"]
    assert status["nextTrainingAt"].endswith(":00Z")

    # New rows at the same source: the next scheduled run trains them into a new version.
    write_iris_csv(csv, slice(1, 150, 2))

    def scheduled_job() -> str | None:
        training = models.status("scheduled").get("training") or {}
        return training["jobName"] if training.get("scheduledFor") else None

    second_job = wait_until(scheduled_job, timeout=150, what="the scheduled training Job")
    second = train_as_the_job_would(models, second_job, tmp_path / "out")
    assert second["version"] != first["version"]
    kubelet.finish_training(models.namespace, second_job, second)

    def serving_second() -> bool:
        found = models.status("scheduled")
        return bool(found["model"]["version"] == second["version"] and found["phase"] == "Ready")

    kubelet.serve_until(models.namespace, "scheduled", serving_second, what="the new version")
    status = models.status("scheduled")
    assert [entry["version"] for entry in status["history"]] == [
        second["version"],
        first["version"],
    ]
    assert status["model"]["score"].startswith("accuracy=")
    assert status["nextTrainingAt"] > status["training"]["scheduledFor"]


def test_a_model_in_mlflow_without_a_server_named_fails_in_words(models: Models) -> None:
    manifest = provided_manifest("registered")
    manifest["spec"]["model"] = {"uri": "models:/team-a.churn/3", "sha256": "e" * 64}
    models.apply(manifest)
    status = models.wait_for_phase("registered", "Failed")
    assert "no MLflow server is named: set spec.mlflow.trackingUri" in status["message"]
    assert models.condition("registered", "Ready")["reason"] == "InvalidSpec"
    # Named, it goes on to serve it.
    manifest["spec"]["mlflow"] = {"trackingUri": "http://mlflow.mlflow:5000"}
    models.apply(manifest)
    models.wait_for_phase("registered", "Deploying")


def test_a_serving_pod_whose_volume_cannot_attach_says_so_in_status(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """A ReadWriteOnce claim's volume attached to another node: the pod is scheduled and its
    container is never made, and only an Event says why."""
    manifest = sample("iris")
    models.apply(manifest)
    summary = trained(manifest["spec"]["training"], "iris")
    kubelet.finish_training(models.namespace, models.training_job("iris"), summary)
    selector = "app.kubernetes.io/component=server,modelops.dev/model=iris"
    pod = wait_until(lambda: next(iter(kubelet.pods(models.namespace, selector)), None))
    multi_attach = (
        'Multi-Attach error for volume "pvc-7c1e" Volume is already used by pod(s) '
        "iris-server-5d9c-x2x9z"
    )
    kubelet.cannot_attach(pod, "2026-12-06T08:00:00Z", "FailedAttachVolume", multi_attach)

    failed = models.wait_for_phase("iris", "Failed", timeout=30)
    assert f"pod {pod.metadata.name}: FailedAttachVolume: {multi_attach}" in failed["message"]


def test_a_pod_its_job_did_not_make_cannot_forge_the_training_result(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """Anyone who may create a pod in the namespace runs one of their own to success with a
    summary past the gate (their version, digest and metrics), then copies the training pod's
    labels onto it. The Job controller adopts it (its selector is those labels) and counts its
    success as the Job's. The operator reads only a pod that ran the Job's own template: the
    run fails, saying so, and nothing of the forged summary is served.

    The pod succeeds before it takes the labels: an adopted pod still running would be one
    active pod too many, and the Job controller deletes it."""
    manifest = sample("iris")
    models.apply(manifest)
    job = models.training_job("iris")
    [real] = wait_until(lambda: kubelet.pods(models.namespace, f"job-name={job}"))
    summary = trained(manifest["spec"]["training"], "iris")
    forged_summary = summary | {
        "version": "v0000000f0rged",
        "sha256": "f" * 64,
        "metrics": {"accuracy": 1.0},
    }
    forged_pod = {
        "metadata": {"name": f"{job}-forged"},
        "spec": {"containers": [{"name": "trainer", "image": "attacker/any:1"}]},
    }
    created = kubelet.core.create_namespaced_pod(models.namespace, forged_pod)
    kubelet.terminate(created, 0, json.dumps(forged_summary))
    kubelet.core.patch_namespaced_pod(
        created.metadata.name, models.namespace, {"metadata": {"labels": real.metadata.labels}}
    )
    wait_until(
        lambda: (
            kubelet.core.read_namespaced_pod(
                created.metadata.name, models.namespace
            ).metadata.owner_references
        ),
        what="the Job controller to adopt the pod",
    )

    failed = models.wait_for_phase("iris", "Failed")
    assert "no pod that ran its template succeeded" in failed["message"], failed["message"]
    assert "model" not in failed and "v0000000f0rged" not in json.dumps(failed)


def test_a_pod_stuck_being_made_is_looked_into_when_its_patience_ends_not_at_the_resync(
    control_plane: Any, operator: Any, models: Models, kubelet: Kubelet
) -> None:
    """No watch brings a pod's Events, nor the moment it has waited too long: the operator
    looks again then. Its resync here is ten minutes away."""
    with taken_over(control_plane, operator, MODELOPS_RESYNC_SECONDS="600"):
        models.apply(sample("iris"))
        job = models.training_job("iris")
        [pod] = wait_until(lambda: kubelet.pods(models.namespace, f"job-name={job}"))
        cannot_mount = 'MountVolume.SetUp failed for volume "models" : mount failed: exit status 32'
        scheduled_now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kubelet.cannot_attach(pod, scheduled_now, "FailedMount", cannot_mount)

        failed = models.wait_for_phase("iris", "Failed", timeout=30)
        assert f"pod {pod.metadata.name}: FailedMount: {cannot_mount}" in failed["message"]


def test_a_pod_no_node_can_take_fails_the_model_once_that_has_lasted_not_before(
    control_plane: Any, operator: Any, models: Models, kubelet: Kubelet
) -> None:
    """A pod the scheduler finds no node for often gets one soon (an old pod terminates, an
    autoscaler adds a node): status says so once it has lasted, and the operator looks again
    then, not at the resync (ten minutes away here)."""
    with taken_over(control_plane, operator, MODELOPS_RESYNC_SECONDS="600"):
        models.apply(sample("iris"))
        job = models.training_job("iris")
        [pod] = wait_until(lambda: kubelet.pods(models.namespace, f"job-name={job}"))
        no_node = "0/1 nodes are available: 1 Insufficient cpu."
        waited = reconcile.UNSCHEDULABLE_PATIENCE_SECONDS - 8
        since = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(
            seconds=waited
        )
        kubelet.cannot_schedule(pod, since.strftime("%Y-%m-%dT%H:%M:%SZ"), no_node)
        failed = models.wait_for_phase("iris", "Failed", timeout=30)
        failed_after = (datetime.datetime.now(datetime.UTC) - since).total_seconds()
        assert f"pod {pod.metadata.name} cannot be scheduled: {no_node}" in failed["message"]
        assert failed_after >= reconcile.UNSCHEDULABLE_PATIENCE_SECONDS, failed_after


def test_a_training_pod_whose_volume_cannot_mount_says_so_in_status(
    models: Models, kubelet: Kubelet
) -> None:
    """The Job's pod is scheduled and never starts; the kubelet says why in an Event alone."""
    models.apply(sample("iris"))
    job = models.training_job("iris")
    [pod] = wait_until(lambda: kubelet.pods(models.namespace, f"job-name={job}"))
    cannot_mount = 'MountVolume.SetUp failed for volume "pvc-2b7f" : mount failed: exit status 32'
    kubelet.cannot_attach(pod, "2026-12-06T08:00:00Z", "FailedMount", cannot_mount)

    failed = models.wait_for_phase("iris", "Failed", timeout=30)
    assert f"pod {pod.metadata.name}: FailedMount: {cannot_mount}" in failed["message"]


def test_a_stuck_pods_events_the_operator_may_not_list_do_not_fail_its_model(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """Under a role of a release before the operator read Events (the moment of an upgrade
    when the new operator runs under the old role), the apiserver's 403 on the list is no
    reason to fail the model: the pod is looked at again, as when its Events tell nothing."""
    forbidden = kubernetes.client.ApiClient(api_client.configuration)
    forbidden.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:default")
    rechecks: list[float] = []
    world = reconcile.World(
        kube=Kube(forbidden),
        models=cast(Any, None),
        watched=cast(Any, None),
        recheck=lambda namespace, name, seconds: rechecks.append(seconds),
    )
    long_ago = "2026-12-06T08:00:00Z"
    pod = {
        "metadata": {"name": "iris-server-a", "namespace": namespace, "uid": "uid-a"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": long_ago}
            ],
            "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}],
        },
    }
    with pytest.raises(kubernetes.client.ApiException) as refused:
        Kube(forbidden).list("v1", "Event", namespace, "")
    assert refused.value.status == 403
    assert reconcile._waited_problem(world, namespace, "iris", [pod]) is None
    assert rechecks == [reconcile.STUCK_POD_RECHECK_SECONDS]


def mlflow_record(namespace: str, name: str, registered_version: int) -> dict[str, str]:
    registered = f"{namespace}.{name}"
    return {
        "runId": f"run{registered_version}",
        "runUrl": f"http://mlflow.invalid:5000/#/experiments/1/runs/run{registered_version}",
        "modelUri": f"models:/{registered}/{registered_version}",
        "modelUrl": f"http://mlflow.invalid:5000/#/models/{registered}/versions/{registered_version}",
    }


def test_the_champion_alias_follows_the_serving_version(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """Promotion, a pin and its removal each point the alias at what serves, through a Job
    run once the rollout completed (the Job's program is tested against a real MLflow server
    in tests/trainer/test_trainer_mlflow.py)."""
    namespace = models.namespace
    manifest = sample("wine")
    manifest["spec"]["mlflow"] = {
        "trackingUri": "http://mlflow.invalid:5000",
        "championAlias": "prod",
    }

    def train_to_ready(spec: dict[str, Any], registered_version: int) -> dict[str, Any]:
        models.apply(spec)
        summary = trained(spec["spec"]["training"], "wine") | {
            "mlflow": mlflow_record(namespace, "wine", registered_version)
        }
        kubelet.finish_training(namespace, models.training_job("wine"), summary)
        return serve_to_ready(models, kubelet, "wine")

    def serve_version(version: str) -> None:
        kubelet.serve_until(
            namespace,
            "wine",
            lambda: (
                (status := models.status("wine"))["model"]["version"] == version
                and status["phase"] == "Ready"
            ),
            what=f"{version} serving",
        )

    def champion_moves_to(registered_version: int, version: str) -> dict[str, Any]:
        job = f"wine-champion-{registered_version}"
        args = wait_until(
            lambda: (
                models.kubectl(
                    "get",
                    "job",
                    job,
                    "-o",
                    "jsonpath={.spec.template.spec.containers[0].args}",
                    check=False,
                ).stdout
            ),
            what=f"Job {job}",
        )
        assert json.loads(args) == [
            "--model",
            f"{namespace}.wine",
            "--version",
            str(registered_version),
            "--alias",
            "prod",
        ]
        kubelet.finish_training(namespace, job, {"alias": "prod"})
        record: dict[str, Any] = wait_until(
            lambda: (
                (model := models.status("wine")["model"])["mlflow"].get("alias") == "prod" and model
            ),
            what=f"the alias on {version}",
        )
        assert record["version"] == version
        champions = [job for job in models.jobs("wine") if "-champion-" in job]
        assert champions == [f"job.batch/wine-champion-{registered_version}"]
        return record

    first = train_to_ready(manifest, 1)["model"]
    champion_moves_to(1, first["version"])

    changed = copy.deepcopy(manifest)
    changed["spec"]["training"]["randomSeed"] = 8
    second = train_to_ready(changed, 2)["model"]
    assert "alias" not in second["mlflow"], "the alias moves only once the Job did it"
    champion_moves_to(2, second["version"])

    # A rollback by pin: the alias follows the pinned version, and back when the pin goes.
    pinned = copy.deepcopy(changed)
    pinned["spec"]["serving"]["modelVersion"] = first["version"]
    models.apply(pinned)
    serve_version(first["version"])
    champion_moves_to(1, first["version"])
    models.apply(changed)
    serve_version(second["version"])
    job = "wine-champion-2"
    wait_until(
        lambda: models.kubectl("get", "job", job, check=False).returncode == 0, what=f"Job {job}"
    )
    # A registry that refuses: the Job's words reach status, the model keeps serving.
    for _ in range(2):  # backoffLimit 1: two pods
        kubelet.fail_training(namespace, job, "error: cannot point alias 'prod' ... 403")
    refused = wait_until(
        lambda: (model := models.status("wine")["model"])["mlflow"].get("aliasProblem") and model,
        what="the refusal in status",
    )
    assert refused["mlflow"]["aliasProblem"] == "error: cannot point alias 'prod' ... 403"
    assert models.status("wine")["phase"] == "Ready"


def test_a_training_job_outside_history_and_the_run_goes_whenever_it_appears(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("diabetes"))
    body = models.get("diabetes")
    spec = api.ModelDeploymentSpec.model_validate(body["spec"])
    stray = builders.build_training_job("diabetes", models.namespace, spec, Settings(), "stray")
    stray["metadata"]["ownerReferences"] = [
        {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": "diabetes",
            "uid": body["metadata"]["uid"],
            "controller": True,
        }
    ]
    models.apply(stray)
    name = stray["metadata"]["name"]
    wait_until(
        lambda: models.kubectl("get", "job", name, check=False).returncode != 0,
        what=f"the stray Job {name} removed",
    )
    assert models.jobs("diabetes") == [f"job.batch/{models.training_job('diabetes')}"]
