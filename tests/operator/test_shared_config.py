"""Each model's entries in the shared Prometheus and Grafana ConfigMaps, written concurrently by
many reconciles, never lost or duplicated, and removed on delete (through the finalizer)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import (  # type: ignore[import-not-found]
    GRAFANA_CM,
    GRAFANA_NS,
    PROMETHEUS_CM,
    PROMETHEUS_NS,
    Models,
    apply_copies,
    configmap_data,
    registered,
    sample,
    scrape_job_names,
)
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.waiting import wait_until

pytestmark = pytest.mark.controlplane

COUNT = 50


def test_fifty_models_at_once_get_one_entry_each_and_leave_no_trace(
    control_plane: ControlPlane,
    models: Models,
    shared_configmaps: dict[str, dict[str, str]],
    promtool: Path,
    tmp_path: Path,
) -> None:
    names = apply_copies(models, COUNT)
    expected_jobs = sorted(f"modelops/{models.namespace}/{name}" for name in names)
    wait_until(
        lambda: registered(control_plane, models.namespace) == (expected_jobs, COUNT),
        timeout=180,
        what="50 scrape jobs and 50 dashboards",
    )
    jobs = scrape_job_names(control_plane)
    assert len(jobs) == len(set(jobs)), "no job twice"
    assert "node" in jobs, "the platform's own job is kept"
    config = yaml.safe_load(
        configmap_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM)["prometheus.yml"]
    )
    assert config["global"] == {"scrape_interval": "30s", "external_labels": {"cluster": "test"}}
    assert "platform.json" in configmap_data(control_plane, GRAFANA_NS, GRAFANA_CM)
    written = tmp_path / "prometheus.yml"
    written.write_text(
        configmap_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM)["prometheus.yml"]
    )
    checked = subprocess.run(
        [str(promtool), "check", "config", str(written)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    models.kubectl("delete", "mdep", "--all", "--timeout=120s")
    wait_until(
        lambda: (
            configmap_data(control_plane, GRAFANA_NS, GRAFANA_CM) == shared_configmaps["grafana"]
            and yaml.safe_load(
                configmap_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM)["prometheus.yml"]
            )
            == yaml.safe_load(shared_configmaps["prometheus"]["prometheus.yml"])
        ),
        timeout=120,
        what="the shared ConfigMaps to be as they were",
    )


def test_turning_monitoring_off_removes_the_entries(
    control_plane: ControlPlane, models: Models, shared_configmaps: dict[str, dict[str, str]]
) -> None:
    manifest = sample("iris")
    models.apply(manifest)
    job = f"modelops/{models.namespace}/iris"
    wait_until(lambda: job in scrape_job_names(control_plane), what="the scrape job")
    manifest["spec"]["monitoring"] = {
        "prometheus": {"enabled": False},
        "grafana": {"enabled": False},
    }
    models.apply(manifest)
    wait_until(lambda: job not in scrape_job_names(control_plane), what="the scrape job to go")
    wait_until(
        lambda: (
            not [
                key
                for key in configmap_data(control_plane, GRAFANA_NS, GRAFANA_CM)
                if models.namespace in key
            ]
        ),
        what="the dashboard to go",
    )


def patch_data(
    control_plane: ControlPlane, namespace: str, name: str, data: dict[str, str]
) -> None:
    control_plane.kubectl(
        "-n", namespace, "patch", "configmap", name, "--type", "merge", "-p", json.dumps({"data": data})
    )  # fmt: skip


def put_entries(control_plane: ControlPlane, namespace: str, name: str) -> None:
    """A scrape job and a dashboard for a model, written as the operator writes them."""
    job = {"job_name": f"modelops/{namespace}/{name}", "static_configs": [{"targets": ["x:1"]}]}
    config = yaml.safe_load(
        configmap_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM)["prometheus.yml"]
    )
    config["scrape_configs"].append(job)
    patch_data(
        control_plane, PROMETHEUS_NS, PROMETHEUS_CM, {"prometheus.yml": yaml.safe_dump(config)}
    )
    patch_data(control_plane, GRAFANA_NS, GRAFANA_CM, {f"modelops_{namespace}_{name}.json": "{}"})


def test_entries_of_models_that_are_gone_are_swept(
    control_plane: ControlPlane, models: Models, shared_configmaps: dict[str, dict[str, str]]
) -> None:
    """Left behind by a deletion whose cleanup failed, or by an operator stopped half-way."""
    models.apply(sample("iris"))
    live_job = f"modelops/{models.namespace}/iris"
    wait_until(lambda: live_job in scrape_job_names(control_plane), what="iris's scrape job")
    put_entries(control_plane, models.namespace, "ghost")
    assert f"modelops/{models.namespace}/ghost" in scrape_job_names(control_plane)
    wait_until(
        lambda: (
            f"modelops/{models.namespace}/ghost" not in scrape_job_names(control_plane)
            and f"modelops_{models.namespace}_ghost.json"
            not in configmap_data(control_plane, GRAFANA_NS, GRAFANA_CM)
        ),
        timeout=60,
        what="the ghost's scrape job and dashboard to be swept",
    )
    jobs = scrape_job_names(control_plane)
    assert live_job in jobs and "node" in jobs, "a live model's and the platform's jobs stay"
    assert "platform.json" in configmap_data(control_plane, GRAFANA_NS, GRAFANA_CM)


def test_a_deletion_completes_when_the_shared_config_cannot_be_cleaned(
    control_plane: ControlPlane, models: Models, shared_configmaps: dict[str, dict[str, str]]
) -> None:
    models.apply(sample("iris"))
    wait_until(
        lambda: (
            "modelops.dev/finalizer" in (models.get("iris")["metadata"].get("finalizers") or [])
        ),
        what="the operator's finalizer on iris",
    )
    patch_data(
        control_plane, PROMETHEUS_NS, PROMETHEUS_CM, {"prometheus.yml": "scrape_configs: [unclosed"}
    )
    try:
        models.kubectl("delete", "mdep", "iris", "--timeout=60s")
        events = models.kubectl(
            "get", "events", "--field-selector", "reason=CleanupIncomplete", "-o", "json"
        ).stdout
        messages = [event["message"] for event in json.loads(events)["items"]]
        assert messages and "could not be removed" in messages[0], messages
    finally:
        patch_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM, shared_configmaps["prometheus"])


def test_a_shared_config_that_cannot_be_edited_shows_in_the_models_status(
    control_plane: ControlPlane, models: Models, shared_configmaps: dict[str, dict[str, str]]
) -> None:
    patch_data(
        control_plane, PROMETHEUS_NS, PROMETHEUS_CM, {"prometheus.yml": "scrape_configs: [unclosed"}
    )
    try:
        models.apply(sample("iris"))
        monitored = wait_until(
            lambda: (
                (found := models.condition("iris", "Monitored")).get("status") == "False" and found
            ),
            what="the Monitored condition to say why",
        )
        assert monitored["reason"] == "NotConfigured"
        assert "prometheus.yml" in monitored["message"], monitored
        assert "monitoring not configured: " in models.status("iris")["message"]
        events = models.kubectl(
            "get", "events", "--field-selector", "reason=MonitoringNotConfigured", "-o", "json"
        ).stdout
        assert len(json.loads(events)["items"]) == 1, "one Event, not one per resync"
    finally:
        patch_data(control_plane, PROMETHEUS_NS, PROMETHEUS_CM, shared_configmaps["prometheus"])
    wait_until(
        lambda: models.condition("iris", "Monitored").get("status") == "True",
        what="Monitored once the shared config is fixed",
    )
    assert "monitoring" not in models.status("iris")["message"]
