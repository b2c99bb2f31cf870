"""With MODELOPS_SERVICE_MONITORS on, each model is scraped through its own ServiceMonitor (the
Prometheus Operator's real CRD, installed into the control plane) instead of a job in the shared
prometheus.yml; without the CRD the operator says so and keeps the shared job."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (  # type: ignore[import-not-found]
    Models,
    deploy_to_ready,
    sample,
    scrape_job_names,
    taken_over,
)
from modelops_envtest import upstream_crds
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import RESYNC_SECONDS, OperatorProcess
from modelops_envtest.waiting import wait_until

pytestmark = pytest.mark.controlplane

CRD = "servicemonitors.monitoring.coreos.com"


@pytest.fixture(scope="module")
def operator_with_service_monitors(
    control_plane: ControlPlane, operator: OperatorProcess
) -> Iterator[OperatorProcess]:
    """A second operator with the setting on; it takes over (peering) while these tests run."""
    with taken_over(control_plane, operator, MODELOPS_SERVICE_MONITORS="true") as newer:
        yield newer


def install_service_monitor_crd(control_plane: ControlPlane) -> None:
    for path in upstream_crds.PROMETHEUS_OPERATOR.paths():
        control_plane.kubectl("apply", "--server-side", "-f", str(path))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")


def service_monitor(models: Models, name: str) -> dict[str, Any] | None:
    found = models.kubectl("get", "servicemonitor", name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_without_the_crd_the_shared_scrape_job_is_kept_and_an_event_says_why(
    control_plane: ControlPlane,
    models: Models,
    monitoring_namespace: str,
    operator_with_service_monitors: OperatorProcess,
) -> None:
    wait_until(
        lambda: control_plane.kubectl("get", "crd", CRD, check=False).returncode != 0,
        what="a cluster without the Prometheus Operator's CRD",
    )
    models.apply(sample("iris"))
    wait_until(
        lambda: f"modelops/{models.namespace}/iris" in scrape_job_names(control_plane),
        what="the shared scrape job",
    )

    def warnings() -> int:
        return models.kubectl(
            "get", "events", "--field-selector", "reason=MonitoringNotConfigured", "-o", "json"
        ).stdout.count("ServiceMonitor CRD")

    wait_until(warnings, what="the MonitoringNotConfigured Event")
    time.sleep(2 * RESYNC_SECONDS + 1)
    assert warnings() == 1, "told once, not on every resync"


def test_each_model_gets_its_own_service_monitor_and_no_shared_job(
    control_plane: ControlPlane,
    models: Models,
    kubelet: Kubelet,
    trained: Any,
    monitoring_namespace: str,
    operator_with_service_monitors: OperatorProcess,
) -> None:
    install_service_monitor_crd(control_plane)
    manifest = sample("iris")
    manifest["spec"]["monitoring"] = {"prometheus": {"interval": "20s"}}
    models.apply(manifest)

    monitor = wait_until(lambda: service_monitor(models, "iris"), what="the ServiceMonitor")
    owner = models.get("iris")["metadata"]["uid"]
    assert [ref["uid"] for ref in monitor["metadata"]["ownerReferences"]] == [owner]
    kubelet.finish_training(
        models.namespace, models.training_job("iris"), trained(manifest["spec"]["training"], "iris")
    )
    models.wait_for_phase("iris", "Deploying")
    service = json.loads(models.kubectl("get", "service", "iris", "-o", "json").stdout)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [models.namespace]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "20s")
    assert {rule["targetLabel"] for rule in endpoint["relabelings"]} == {
        "namespace",
        "model",
        "version",
        "pod",
        "job",
    }
    wait_until(
        lambda: f"modelops/{models.namespace}/iris" not in scrape_job_names(control_plane),
        what="the shared scrape job to go",
    )

    manifest["spec"]["monitoring"] = {"prometheus": {"enabled": False}}
    models.apply(manifest)
    wait_until(lambda: service_monitor(models, "iris") is None, what="the ServiceMonitor to go")
    assert f"modelops/{models.namespace}/iris" not in scrape_job_names(control_plane)

    manifest["spec"]["monitoring"] = {}
    models.apply(manifest)
    wait_until(lambda: service_monitor(models, "iris"), what="the ServiceMonitor to return")
    models.kubectl("delete", "mdep", "iris", "--timeout=60s")
    wait_until(
        lambda: service_monitor(models, "iris") is None,
        what="the ServiceMonitor to be garbage-collected",
    )


def test_a_service_monitor_of_someone_elses_is_reported_and_the_model_still_serves(
    control_plane: ControlPlane,
    models: Models,
    kubelet: Kubelet,
    trained: Any,
    monitoring_namespace: str,
    operator_with_service_monitors: OperatorProcess,
) -> None:
    """Monitoring is the platform's, not the model's: an object in the way there is told in
    Monitored, as for a dashboard, and never taken over."""
    install_service_monitor_crd(control_plane)
    theirs = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "iris", "namespace": models.namespace},
        "spec": {"selector": {"matchLabels": {"app": "website"}}, "endpoints": [{"port": "web"}]},
    }
    models.apply(theirs)
    deploy_to_ready(models, kubelet, trained, sample("iris"))

    monitored = models.condition("iris", "Monitored")
    assert monitored["status"] == "False", monitored
    assert (
        f"ServiceMonitor {models.namespace}/iris already exists and is not managed by "
        "ModelDeployment iris" in monitored["message"]
    )
    kept = service_monitor(models, "iris")
    assert kept is not None and kept["spec"] == theirs["spec"]
    assert not kept["metadata"].get("ownerReferences")
