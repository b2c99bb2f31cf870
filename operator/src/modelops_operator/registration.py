"""A model's entries in the shared Prometheus and Grafana ConfigMaps: outside the owner tree,
so they are added and removed here, and removed on delete through the finalizer."""

from __future__ import annotations

import json
import logging
import urllib.request

from modelops_operator import api
from modelops_operator.kube import Kube
from modelops_operator.monitoring import grafana, prometheus
from modelops_operator.settings import Settings

logger = logging.getLogger(__name__)

PROMETHEUS_KEY = "prometheus.yml"
# The sidecar of the popular Grafana charts loads ConfigMaps carrying this label.
GRAFANA_SIDECAR_LABELS = {"grafana_dashboard": "1"}
RELOAD_TIMEOUT_SECONDS = 5


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
    only where `scrape_job` (the model is not scraped through a ServiceMonitor)."""
    job_name = prometheus.scrape_job_name(namespace, name)
    if spec.prometheus.enabled and scrape_job:
        job = prometheus.build_scrape_job(namespace, name, spec.prometheus.interval)
        changed = kube.update_configmap(
            settings.prometheus_config,
            lambda data: data.update(
                {PROMETHEUS_KEY: prometheus.with_scrape_job(data.get(PROMETHEUS_KEY), job)}
            ),
        )
    else:
        changed = _remove_scrape_job(kube, settings, job_name)
    if changed or _reload.pending:
        reload_prometheus(settings)

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
    if (
        _remove_scrape_job(kube, settings, prometheus.scrape_job_name(namespace, name))
        or _reload.pending
    ):
        reload_prometheus(settings)
    _remove_dashboard(kube, settings, grafana.dashboard_key(namespace, name))


def _remove_scrape_job(kube: Kube, settings: Settings, job_name: str) -> bool:
    def edit(data: dict[str, str]) -> None:
        if PROMETHEUS_KEY in data:
            data[PROMETHEUS_KEY] = prometheus.without_scrape_job(data[PROMETHEUS_KEY], job_name)

    return kube.update_configmap(settings.prometheus_config, edit)


def _remove_dashboard(kube: Kube, settings: Settings, key: str) -> None:
    def edit(data: dict[str, str]) -> None:
        data.pop(key, None)

    kube.update_configmap(settings.grafana_dashboards, edit)


class _ReloadState:
    pending = False


_reload = _ReloadState()


def reload_prometheus(settings: Settings) -> None:
    """Ask Prometheus to re-read its configuration. A failure is logged and remembered, not
    raised: the next reconcile of any model (at the latest its resync) tries again."""
    if not settings.prometheus_url:
        return
    request = urllib.request.Request(
        f"{settings.prometheus_url.rstrip('/')}/-/reload", method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=RELOAD_TIMEOUT_SECONDS):
            _reload.pending = False
    except OSError as error:
        _reload.pending = True
        logger.warning(
            "Prometheus reload at %s failed, will retry: %s", settings.prometheus_url, error
        )
