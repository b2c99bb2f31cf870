"""Each model's scrape job, in the scrape config file its name hashes to, and its dashboard
ConfigMap: written concurrently by many reconciles, never lost or duplicated, no file anywhere
near the object limit, and removed on delete (the job through the finalizer, the dashboard by
garbage collection)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import (  # type: ignore[import-not-found]
    MONITORING_NS,
    SETTINGS,
    Models,
    apply_copies,
    configmap_data,
    dashboards,
    placed,
    registered,
    sample,
    scrape_files,
    scrape_job_names,
    scrape_jobs,
)
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.operator import RESYNC_SECONDS
from modelops_envtest.waiting import wait_until
from modelops_operator import registration
from modelops_operator.monitoring import prometheus

pytestmark = pytest.mark.controlplane

COUNT = 150
# Kubernetes refuses a ConfigMap whose data passes 1 MiB.
CONFIGMAP_LIMIT = 1024 * 1024
FLEET = 5_000


def test_a_fleet_gets_one_job_and_dashboard_each_and_no_file_nears_the_limit(
    control_plane: ControlPlane,
    models: Models,
    monitoring_namespace: str,
    promtool: Path,
    tmp_path: Path,
) -> None:
    names = apply_copies(models, COUNT)
    expected_jobs = sorted(f"modelops/{models.namespace}/{name}" for name in names)
    wait_until(
        lambda: registered(control_plane, models.namespace) == (expected_jobs, COUNT),
        timeout=300,
        what=f"{COUNT} scrape jobs and {COUNT} dashboards",
    )
    jobs = scrape_jobs(control_plane)
    assert len(jobs) == len({job for _, job in jobs}), "no job twice"
    settings = placed(control_plane)
    for configmap, job in jobs:
        model = prometheus.model_of_job(job)
        assert model is not None
        assert registration.scrape_config_map(settings, *model)[1] == configmap

    # The most bytes a job takes in a file, times the most jobs a file gets at FLEET models.
    files = scrape_files(control_plane)
    jobs_per_file = Counter(configmap for configmap, _ in jobs)
    bytes_per_job = max(
        (len(registration.scrape_file_key(name)) + len(text.encode())) / jobs_per_file[name]
        for name, text in files.items()
        if jobs_per_file[name]
    )
    most_jobs_at_fleet = max(
        Counter(
            prometheus.scrape_file_index(
                models.namespace, f"m{index}", settings.scrape_placement_key
            )
            for index in range(FLEET)
        ).values()
    )
    assert bytes_per_job * most_jobs_at_fleet < CONFIGMAP_LIMIT / 4, (
        f"{bytes_per_job:.0f} bytes per job, {most_jobs_at_fleet} jobs in a file at {FLEET}"
    )

    # The whole layout, as Prometheus loads it: prometheus.yml naming the files by a glob.
    mounted = tmp_path / "scrape"
    mounted.mkdir()
    for name, text in files.items():
        (mounted / registration.scrape_file_key(name)).write_text(text)
    main = tmp_path / "prometheus.yml"
    main.write_text(yaml.safe_dump({"scrape_config_files": [str(mounted / "*.yml")]}))
    checked = subprocess.run(
        [str(promtool), "check", "config", str(main)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    models.kubectl("delete", "mdep", "--all", "--timeout=180s")
    wait_until(
        lambda: registered(control_plane, models.namespace) == ([], 0),
        timeout=120,
        what="every job and dashboard to go",
    )


def test_turning_monitoring_off_removes_the_job_and_dashboard(
    control_plane: ControlPlane, models: Models, monitoring_namespace: str
) -> None:
    manifest = sample("iris")
    models.apply(manifest)
    job = f"modelops/{models.namespace}/iris"
    wait_until(
        lambda: registered(control_plane, models.namespace) == ([job], 1),
        what="the scrape job and dashboard",
    )
    manifest["spec"]["monitoring"] = {
        "prometheus": {"enabled": False},
        "grafana": {"enabled": False},
    }
    models.apply(manifest)
    wait_until(
        lambda: registered(control_plane, models.namespace) == ([], 0),
        what="the scrape job and dashboard to go",
    )


def file_of(control_plane: ControlPlane, model: str, namespace: str) -> str:
    return registration.scrape_config_map(placed(control_plane), namespace, model)[1]


def put_file(control_plane: ControlPlane, configmap: str, text: str) -> str:
    """The file as an admin's `kubectl apply` would leave it; returns it as written."""
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": configmap, "namespace": MONITORING_NS},
        "data": {registration.scrape_file_key(configmap): text},
    }
    applied = control_plane.kubectl("apply", "-f", "-", "-o", "json", stdin=json.dumps(manifest))
    written: str = json.loads(applied.stdout)["data"][registration.scrape_file_key(configmap)]
    return written


def put_job(control_plane: ControlPlane, namespace: str, name: str) -> list[str]:
    """A scrape job for a model, where the operator would write it; returns the job names of
    its file as written (the operator may change the file right after)."""
    configmap = file_of(control_plane, name, namespace)
    text = configmap_data(control_plane, MONITORING_NS, configmap).get(
        registration.scrape_file_key(configmap), ""
    )
    config = yaml.safe_load(text) or {}
    config.setdefault("scrape_configs", []).append(
        {"job_name": f"modelops/{namespace}/{name}", "static_configs": [{"targets": ["x:1"]}]}
    )
    written = yaml.safe_load(put_file(control_plane, configmap, yaml.safe_dump(config)))
    return [job["job_name"] for job in written["scrape_configs"]]


def test_jobs_of_models_that_are_gone_are_swept(
    control_plane: ControlPlane, models: Models, monitoring_namespace: str
) -> None:
    """Left behind by a deletion whose cleanup failed, or by an operator stopped half-way."""
    models.apply(sample("iris"))
    live_job = f"modelops/{models.namespace}/iris"
    wait_until(lambda: live_job in scrape_job_names(control_plane), what="iris's scrape job")
    # Checked as written: the sweep may take it any moment after.
    assert f"modelops/{models.namespace}/ghost" in put_job(control_plane, models.namespace, "ghost")
    wait_until(
        lambda: f"modelops/{models.namespace}/ghost" not in scrape_job_names(control_plane),
        timeout=60,
        what="the ghost's scrape job to be swept",
    )
    assert live_job in scrape_job_names(control_plane), "a live model's job stays"


def test_an_unreadable_scrape_file_stops_the_sweep_of_no_other(
    control_plane: ControlPlane, models: Models, monitoring_namespace: str
) -> None:
    """The sweep walks the files in order: the first one broken, a ghost's job in a later one
    is swept all the same."""
    models.apply(sample("iris"))  # the sweep follows each round of the models' resync
    first = registration.scrape_config_maps(SETTINGS)[0][1]
    settings = placed(control_plane)
    iris = registration.scrape_config_map(settings, models.namespace, "iris")[1]
    ghost = next(
        name
        for name in (f"ghost-{i}" for i in range(100))
        if registration.scrape_config_map(settings, models.namespace, name)[1] not in (first, iris)
    )
    put_job(control_plane, models.namespace, ghost)
    put_file(control_plane, first, "scrape_configs: [unclosed")
    try:
        wait_until(
            lambda: (
                f"modelops/{models.namespace}/{ghost}"
                not in ghost_file_jobs(
                    control_plane, file_of(control_plane, ghost, models.namespace)
                )
            ),
            timeout=60,
            what="the ghost's scrape job to be swept past the broken file",
        )
    finally:
        put_file(control_plane, first, "scrape_configs: []\n")


def ghost_file_jobs(control_plane: ControlPlane, configmap: str) -> list[str]:
    text = configmap_data(control_plane, MONITORING_NS, configmap)[
        registration.scrape_file_key(configmap)
    ]
    return [job["job_name"] for job in (yaml.safe_load(text) or {}).get("scrape_configs") or []]


def events_of(models: Models, reason: str) -> list[str]:
    """The messages of the namespace's Events for `reason`."""
    found = models.kubectl("get", "events", "--field-selector", f"reason={reason}", "-o", "json")
    return [event["message"] for event in json.loads(found.stdout)["items"]]


@pytest.fixture
def iris_file(
    control_plane: ControlPlane, models: Models, monitoring_namespace: str
) -> Iterator[str]:
    """iris's scrape config file, emptied again after the test."""
    configmap = file_of(control_plane, "iris", models.namespace)
    yield configmap
    put_file(control_plane, configmap, "scrape_configs: []\n")


def test_a_deletion_completes_when_the_scrape_file_cannot_be_cleaned(
    models: Models, control_plane: ControlPlane, iris_file: str
) -> None:
    models.apply(sample("iris"))
    wait_until(
        lambda: (
            "modelops.dev/finalizer" in (models.get("iris")["metadata"].get("finalizers") or [])
        ),
        what="the operator's finalizer on iris",
    )
    put_file(control_plane, iris_file, "scrape_configs: [unclosed")
    models.kubectl("delete", "mdep", "iris", "--timeout=60s")
    messages = wait_until(
        lambda: events_of(models, "CleanupIncomplete"), what="the CleanupIncomplete Event"
    )
    assert "could not be removed" in messages[0], messages
    assert iris_file in messages[0], "the message names the ConfigMap"


def test_a_scrape_file_that_cannot_be_edited_shows_in_the_models_status(
    models: Models, control_plane: ControlPlane, iris_file: str
) -> None:
    put_file(control_plane, iris_file, "scrape_configs: [unclosed")
    models.apply(sample("iris"))
    monitored = wait_until(
        lambda: (found := models.condition("iris", "Monitored")).get("status") == "False" and found,
        what="the Monitored condition to say why",
    )
    assert monitored["reason"] == "NotConfigured"
    assert f"ConfigMap {MONITORING_NS}/{iris_file}" in monitored["message"], monitored
    assert "not valid YAML" in monitored["message"], monitored
    assert "monitoring not configured: " in models.status("iris")["message"]
    assert dashboards(control_plane, models.namespace), "the dashboard is made all the same"
    wait_until(
        lambda: events_of(models, "MonitoringNotConfigured"),
        what="the MonitoringNotConfigured Event",
    )
    time.sleep(2 * RESYNC_SECONDS + 1)
    assert len(events_of(models, "MonitoringNotConfigured")) == 1, "one Event, not one per resync"

    put_file(control_plane, iris_file, "scrape_configs: []\n")
    wait_until(
        lambda: models.condition("iris", "Monitored").get("status") == "True",
        what="Monitored once the file is fixed",
    )
    assert "monitoring" not in models.status("iris")["message"]
