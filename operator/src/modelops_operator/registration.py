"""A model's entries in the shared Prometheus and Grafana ConfigMaps: outside the owner tree,
so they are added and removed here, and removed on delete through the finalizer."""

from __future__ import annotations

import fnmatch
import json
import math
import threading
import time
from collections.abc import Callable

from modelops_operator import api
from modelops_operator.kube import Kube
from modelops_operator.monitoring import grafana, prometheus
from modelops_operator.settings import Settings

PROMETHEUS_KEY = "prometheus.yml"
# The sidecar of the popular Grafana charts loads ConfigMaps carrying this label.
GRAFANA_SIDECAR_LABELS = {"grafana_dashboard": "1"}


def sync(
    kube: Kube,
    settings: Settings,
    namespace: str,
    name: str,
    spec: api.MonitoringSpec,
    *,
    scrape_job: bool,
) -> None:
    """Make the shared ConfigMaps hold exactly what the monitoring spec asks for; a scrape job
    only where `scrape_job` (the model is not scraped through a ServiceMonitor). Prometheus
    re-reads its mounted configuration by itself (auto-reload-config): nothing to call."""
    job_name = prometheus.scrape_job_name(namespace, name)
    if spec.prometheus.enabled and scrape_job:
        job = prometheus.build_scrape_job(namespace, name, spec.prometheus.interval)
        kube.update_configmap(
            settings.prometheus_config,
            lambda data: data.update(
                {PROMETHEUS_KEY: prometheus.with_scrape_job(data.get(PROMETHEUS_KEY), job)}
            ),
        )
    else:
        _remove_scrape_job(kube, settings, job_name)

    key = grafana.dashboard_key(namespace, name)
    if spec.grafana.enabled:
        dashboard = json.dumps(grafana.build_dashboard(namespace, name), indent=1, sort_keys=True)
        kube.update_configmap(
            settings.grafana_dashboards,
            lambda data: data.update({key: dashboard}),
            labels=GRAFANA_SIDECAR_LABELS,
        )
    else:
        _remove_dashboard(kube, settings, key)


def forget(kube: Kube, settings: Settings, namespace: str, name: str) -> None:
    """Remove the model's entries; nothing to do where they (or the ConfigMaps) are gone."""
    _remove_scrape_job(kube, settings, prometheus.scrape_job_name(namespace, name))
    _remove_dashboard(kube, settings, grafana.dashboard_key(namespace, name))


def sweep(kube: Kube, settings: Settings) -> None:
    """Remove the scrape jobs and dashboards of models that no longer exist in the namespaces
    this operator watches: what a deletion whose cleanup failed, or an operator stopped half-way,
    left behind. The models are listed inside each edit, after the ConfigMap was read, so no
    entry is judged against a list older than itself."""

    def orphaned_now() -> Callable[[tuple[str, str] | None], bool]:
        live = {
            (model["metadata"]["namespace"], model["metadata"]["name"])
            for model in kube.list_models()
        }
        watched = settings.watched_namespaces

        def orphaned(model: tuple[str, str] | None) -> bool:
            return (
                model is not None
                and model not in live
                and (not watched or any(fnmatch.fnmatch(model[0], glob) for glob in watched))
            )

        return orphaned

    def prune_jobs(data: dict[str, str]) -> None:
        if PROMETHEUS_KEY in data:
            orphaned = orphaned_now()
            data[PROMETHEUS_KEY] = prometheus.without_scrape_jobs(
                data[PROMETHEUS_KEY], lambda job: orphaned(prometheus.model_of_job(job))
            )

    def prune_dashboards(data: dict[str, str]) -> None:
        orphaned = orphaned_now()
        for key in [key for key in data if orphaned(grafana.model_of_dashboard_key(key))]:
            del data[key]

    kube.update_configmap(settings.prometheus_config, prune_jobs)
    kube.update_configmap(settings.grafana_dashboards, prune_dashboards)


class SweepSchedule:
    """When the next sweep is due: at most one per `interval_seconds`, however many resyncs
    ask (every model's resync does, so a sweep runs while any model exists)."""

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._last = -math.inf
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.interval_seconds:
                return False
            self._last = now
            return True


def _remove_scrape_job(kube: Kube, settings: Settings, job_name: str) -> None:
    def edit(data: dict[str, str]) -> None:
        if PROMETHEUS_KEY in data:
            data[PROMETHEUS_KEY] = prometheus.without_scrape_job(data[PROMETHEUS_KEY], job_name)

    kube.update_configmap(settings.prometheus_config, edit)


def _remove_dashboard(kube: Kube, settings: Settings, key: str) -> None:
    def edit(data: dict[str, str]) -> None:
        data.pop(key, None)

    kube.update_configmap(settings.grafana_dashboards, edit)
