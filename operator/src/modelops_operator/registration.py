"""A model's scrape job in the scrape config files: outside the owner tree (one file holds many
models' jobs), so it is added and removed here, and removed on delete through the finalizer."""

from __future__ import annotations

import fnmatch
import math
import threading
import time
from collections.abc import Callable, Collection

from modelops_operator import api
from modelops_operator.children import WatchedChildren
from modelops_operator.kube import Kube
from modelops_operator.monitoring import prometheus
from modelops_operator.settings import Settings

# A scrape config file's new text from its old (None: absent, or to stay absent).
FileChange = Callable[[str | None], str | None]


def scrape_config_maps(settings: Settings) -> list[tuple[str, str]]:
    """(namespace, name) of every ConfigMap that holds scrape jobs, in file order; none where
    the platform has no scrape config files."""
    if not settings.scrape_files:
        return []
    namespace, prefix = settings.scrape_configs.split("/", 1)
    return [(namespace, f"{prefix}-{index:02d}") for index in range(prometheus.SCRAPE_FILES)]


def scrape_file_key(configmap_name: str) -> str:
    """The ConfigMap's one key: named after the ConfigMap, so that all of them project into one
    directory without clashing."""
    return f"{configmap_name}.yml"


def scrape_config_map(settings: Settings, namespace: str, name: str) -> tuple[str, str]:
    """(namespace, name) of the ConfigMap that holds the model's scrape job."""
    return scrape_config_maps(settings)[prometheus.scrape_file_index(namespace, name)]


def sync(
    kube: Kube,
    watched: WatchedChildren,
    settings: Settings,
    namespace: str,
    name: str,
    spec: api.PrometheusMonitoring,
    *,
    scrape_job: bool,
) -> None:
    """Make the model's scrape config file hold exactly what the spec asks for: its job only
    where `scrape_job` (the model is not scraped through a ServiceMonitor). Prometheus re-reads
    its configuration by itself (auto-reload-config): nothing to call.

    Where the watched file already says so (every resync of a settled fleet), nothing is read
    or written: a file changed since is seen by the watch in time for the next resync."""
    if not settings.scrape_files:
        return
    configmap = scrape_config_map(settings, namespace, name)
    if spec.enabled and scrape_job:
        job = prometheus.build_scrape_job(namespace, name, spec.interval)
        change = _checked(configmap, lambda text: prometheus.with_scrape_job(text, job))
    else:
        change = _checked(configmap, _without_job(namespace, name))
    seen = watched.get("v1", "ConfigMap", configmap[0], None, configmap[1])
    if seen is not None:
        text = (seen.get("data") or {}).get(scrape_file_key(configmap[1]))
        if change(text) == text:
            return
    _edit_file(kube, configmap, change)


def forget(kube: Kube, settings: Settings, namespace: str, name: str) -> None:
    """Remove the model's scrape job; nothing to do where it (or its ConfigMap) is gone."""
    if not settings.scrape_files:
        return
    configmap = scrape_config_map(settings, namespace, name)
    _edit_file(kube, configmap, _checked(configmap, _without_job(namespace, name)))


def _without_job(namespace: str, name: str) -> FileChange:
    job_name = prometheus.scrape_job_name(namespace, name)
    return lambda text: prometheus.without_scrape_job(text, job_name) if text is not None else None


def sweep(kube: Kube, settings: Settings, models: Collection[tuple[str, str]]) -> None:
    """Remove the scrape jobs of models that no longer exist in the namespaces this operator
    watches: what a deletion whose cleanup failed, or an operator stopped half-way, left behind.

    `models` (namespace, name) are the models as the watch shows them. A job whose model is not
    among them may belong to a model made since, so its model is looked up again after its file
    was read: nothing is judged against a view older than itself, and the look-ups are as many
    as the orphans. (Listing the models instead, a thousand of them, was the operator's largest
    allocation of all.)"""
    listed = set(models)
    watched = settings.watched_namespaces

    def orphaned(job_name: str) -> bool:
        model = prometheus.model_of_job(job_name)
        return (
            model is not None
            and model not in listed
            and (not watched or any(fnmatch.fnmatch(model[0], glob) for glob in watched))
            and kube.get_model(*model) is None
        )

    # A file that cannot be read or written stops the sweep of none of the others.
    failures = []
    for configmap in scrape_config_maps(settings):
        try:
            _edit_file(
                kube,
                configmap,
                _checked(
                    configmap,
                    lambda text: (
                        prometheus.without_scrape_jobs(text, orphaned) if text is not None else None
                    ),
                ),
            )
        except Exception as error:  # this file's; the next sweep tries it again
            failures.append(str(error))
    if failures:
        raise SweepIncomplete("; ".join(failures))


class SweepIncomplete(Exception):
    """Some scrape files could not be swept (the others were): each one's error."""


def _checked(configmap: tuple[str, str], change: FileChange) -> FileChange:
    """`change`, naming the file in its error when the file cannot be read as a scrape
    configuration."""

    def checked(text: str | None) -> str | None:
        try:
            return change(text)
        except ValueError as error:
            raise ValueError(
                f"ConfigMap {'/'.join(configmap)}, {scrape_file_key(configmap[1])}: {error}"
            ) from None

    return checked


def _edit_file(kube: Kube, configmap: tuple[str, str], change: FileChange) -> None:
    """Replace the ConfigMap's scrape config file (None: absent) with `change`'s result (None:
    leave absent)."""
    key = scrape_file_key(configmap[1])

    def edit(data: dict[str, str]) -> None:
        changed = change(data.get(key))
        if changed is not None:
            data[key] = changed

    kube.update_configmap(configmap, edit)


class SweepSchedule:
    """When the next sweep is due: at most one per `interval_seconds`, however many resyncs
    and deletions ask (every model's resync does, so a sweep runs while any model exists)."""

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
