"""Faults the operator must survive: killed while applying many models, the apiserver and etcd
restarted while models train, a training pod deleted mid-run. Everything converges, with one
Job per training spec, every scrape job and dashboard in place, and no finalizer left stuck."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import (  # type: ignore[import-not-found]
    Models,
    apply_copies,
    create_monitoring_namespace,
    registered,
    sample,
    scrape_job_names,
)
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess, install_prerequisites
from modelops_envtest.waiting import wait_until

pytestmark = pytest.mark.controlplane

COUNT = 50


def training_jobs(models: Models) -> Counter[str]:
    """How many training Jobs each model has."""
    listed = json.loads(
        models.kubectl(
            "get", "jobs", "-l", "app.kubernetes.io/component=training", "-o", "json"
        ).stdout
    )
    return Counter(job["metadata"]["labels"]["modelops.dev/model"] for job in listed["items"])


def none_left(models: Models) -> bool:
    return not models.kubectl("get", "mdep", "-o", "name").stdout.strip()


def test_an_operator_killed_while_fifty_models_are_applied_converges(
    control_plane: ControlPlane,
    models: Models,
    operator: OperatorProcess,
    monitoring_namespace: str,
) -> None:
    names = apply_copies(models, COUNT)
    wait_until(lambda: training_jobs(models), what="the operator to start on the models")
    operator.stop(kill=True)
    operator.start()

    expected = sorted(f"modelops/{models.namespace}/{name}" for name in names)
    wait_until(
        lambda: registered(control_plane, models.namespace) == (expected, COUNT),
        timeout=240,
        what="every scrape job and dashboard after the restart",
    )
    wait_until(
        lambda: all(models.status(name).get("training", {}).get("jobName") for name in names[-5:]),
        what="the last models' training to be reported",
    )
    assert training_jobs(models) == Counter(dict.fromkeys(names, 1)), "one Job per model"

    models.kubectl("delete", "mdep", "--all", "--timeout=180s")
    assert none_left(models), "no finalizer left stuck"
    wait_until(
        lambda: registered(control_plane, models.namespace) == ([], 0),
        timeout=120,
        what="the entries of the deleted models to go",
    )


def test_models_converge_across_an_apiserver_and_etcd_restart(trained: Any) -> None:
    with ControlPlane() as plane:
        install_prerequisites(plane)
        create_monitoring_namespace(plane)
        operator = OperatorProcess(plane).start()
        try:
            namespace = f"t-{uuid.uuid4().hex[:10]}"
            plane.kubectl("create", "namespace", namespace)
            models = Models(plane, namespace)
            kubelet = Kubelet(plane.api_client())
            manifests = [sample("iris"), sample("wine")]
            for manifest in manifests:
                models.apply(manifest)
            jobs = {manifest["metadata"]["name"]: "" for manifest in manifests}
            for name in jobs:
                jobs[name] = models.training_job(name)

            plane.restart_storage_and_apiserver()

            for manifest in manifests:
                name = manifest["metadata"]["name"]
                kubelet.finish_training(
                    namespace, jobs[name], trained(manifest["spec"]["training"], name)
                )
                kubelet.serve_until(
                    namespace,
                    name,
                    lambda name=name: models.status(name).get("phase") == "Ready",
                    timeout=120,
                    what=f"{name} Ready after the restart ({operator.log_tail()})",
                )
            assert training_jobs(models) == Counter(dict.fromkeys(jobs, 1))
            assert {f"modelops/{namespace}/{name}" for name in jobs} <= set(scrape_job_names(plane))
            models.kubectl("delete", "mdep", "--all", "--timeout=60s")
            assert none_left(models), "no finalizer left stuck"
        finally:
            operator.stop()


def test_a_training_pod_deleted_mid_run_is_replaced_and_the_model_converges(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    manifest = sample("iris")
    models.apply(manifest)
    job = models.training_job("iris")
    [pod] = kubelet.pods(models.namespace, f"job-name={job}")
    models.kubectl("delete", "pod", pod.metadata.name, "--wait=false")
    wait_until(
        lambda: any(
            other.metadata.name != pod.metadata.name and not other.metadata.deletion_timestamp
            for other in kubelet.pods(models.namespace, f"job-name={job}")
        ),
        what="a pod to replace the deleted one",
    )
    kubelet.finish_training(models.namespace, job, trained(manifest["spec"]["training"], "iris"))
    kubelet.serve_until(
        models.namespace,
        "iris",
        lambda: models.status("iris").get("phase") == "Ready",
        what="iris Ready",
    )
    assert training_jobs(models) == Counter({"iris": 1})
