"""A model's scrape job in the scrape config files: outside the owner tree (one file holds many
models' jobs), so it is added and removed here, and removed on delete through the finalizer."""

from __future__ import annotations

import fnmatch
import math
import secrets
import threading
import time
from collections.abc import Callable, Collection

from modelops_operator import api
from modelops_operator.children import WatchedChildren
from modelops_operator.kube import Kube
from modelops_operator.monitoring import prometheus
from modelops_operator.settings import Settings
from modelops_operator.shared_configmap import (
    SharedConfigUnavailable,
    namespace_must_exist,
    shared_config_map,
)

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
    index = prometheus.scrape_file_index(namespace, name, settings.scrape_placement_key)
    return scrape_config_maps(settings)[index]


PLACEMENT_KEY = "key"


def placement_config_map(settings: Settings) -> tuple[str, str]:
    """(namespace, name) of the ConfigMap that keeps the key of the jobs' placement, beside the
    files: whoever may read it may read the files, which show the placement anyway."""
    namespace, prefix = settings.scrape_configs.split("/", 1)
    return namespace, f"{prefix}-placement"


# The placement key of each set of files (by MODELOPS_SCRAPE_CONFIGS), read once per process.
_keys: dict[str, str] = {}
_keys_lock = threading.Lock()


def keyed(kube: Kube, settings: Settings) -> Settings:
    """`settings` with the key of the jobs' placement: the one kept beside the files, made
    (random) when first needed, so every replica and restart places alike. Read on first use,
    not at start: the files' namespace may come later."""
    if not settings.scrape_files or settings.scrape_placement_key:
        return settings
    with _keys_lock:
        key = _keys.get(settings.scrape_configs)
        if key is None:
            key = _keys[settings.scrape_configs] = _kept_key(kube, settings)
    return settings.model_copy(update={"scrape_placement_key": key})


def known_key(settings: Settings) -> Settings:
    """`settings` with the placement key if this process has read it (for messages)."""
    key = _keys.get(settings.scrape_configs)
    if settings.scrape_placement_key or key is None:
        return settings
    return settings.model_copy(update={"scrape_placement_key": key})


def _kept_key(kube: Kube, settings: Settings) -> str:
    namespace, name = placement_config_map(settings)
    with namespace_must_exist(namespace, "the scrape config files (MODELOPS_SCRAPE_CONFIGS)"):
        kept, _ = kube.create_if_absent(
            shared_config_map(namespace, name, {PLACEMENT_KEY: secrets.token_hex(32)})
        )
    key = (kept.get("data") or {}).get(PLACEMENT_KEY)
    if not isinstance(key, str) or not key:
        raise SharedConfigUnavailable(
            f"ConfigMap {namespace}/{name} holds no placement key ({PLACEMENT_KEY!r}): delete it, "
            "and the operator makes a new one (the jobs then move to their new files)"
        )
    return key


def _unkeyed_config_map(settings: Settings, namespace: str, name: str) -> tuple[str, str]:
    """Where operators before the keyed placement put the model's job."""
    return scrape_config_maps(settings)[prometheus.unkeyed_scrape_file_index(namespace, name)]


def sync(
    kube: Kube,
    watched: WatchedChildren,
    settings: Settings,
    namespace: str,
    name: str,
    spec: api.PrometheusMonitoring,
    limits: prometheus.Limits,
    *,
    scrape_job: bool,
) -> None:
    """Make the model's scrape config file hold exactly what the spec asks for: its job only
    where `scrape_job` (the model is not scraped through a ServiceMonitor). Prometheus re-reads
    its configuration by itself (auto-reload-config): nothing to call.

    Where the watched file already says so (every resync of a settled fleet), nothing is read
    or written: a file changed since is seen by the watch in time for the next resync.

    A job that an operator before the keyed placement wrote elsewhere is removed there first,
    then written here: the job is never in two files (Prometheus would refuse them both)."""
    if not settings.scrape_files:
        return
    settings = keyed(kube, settings)
    configmap = scrape_config_map(settings, namespace, name)
    unkeyed = _unkeyed_config_map(settings, namespace, name)
    if spec.enabled and scrape_job:
        job = prometheus.build_scrape_job(namespace, name, spec.interval, limits)
        budget = prometheus.FileBudget(settings.scrape_file_bytes, settings.scrape_namespace_bytes)
        change = _checked(configmap, lambda text: prometheus.with_scrape_job(text, job, budget))
    else:
        change = _checked(configmap, _without_job(namespace, name))
    settled = _settled(_watched_text(watched, configmap), change)
    # Before its own file changes, the older file is read as stored, not as watched: the watch
    # may not have shown it yet (an operator's first minutes, or one resumed after a pause).
    if unkeyed != configmap and (
        not settled
        or prometheus.has_scrape_job(
            _watched_text(watched, unkeyed), prometheus.scrape_job_name(namespace, name)
        )
    ):
        _edit_file(kube, unkeyed, _checked(unkeyed, _without_job(namespace, name)))
    if not settled:
        _edit_file(kube, configmap, change)


def _settled(watched_text: str | None, change: FileChange) -> bool:
    """Whether the file as the watch shows it needs no `change`."""
    if watched_text is None:
        return False
    try:
        return change(watched_text) == watched_text
    except ValueError:
        return False  # as the watch shows it: the file as stored decides


def _watched_text(watched: WatchedChildren, configmap: tuple[str, str]) -> str | None:
    seen = watched.get("v1", "ConfigMap", configmap[0], None, configmap[1])
    return None if seen is None else (seen.get("data") or {}).get(scrape_file_key(configmap[1]))


def forget(kube: Kube, settings: Settings, namespace: str, name: str) -> None:
    """Remove the model's scrape job; nothing to do where it (or its ConfigMap) is gone."""
    if not settings.scrape_files:
        return
    settings = keyed(kube, settings)
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
    allocation of all.)

    A job in a file other than its model's (an older operator's placement, or a new key) goes
    too: its model's reconcile writes it into its own file, and a job in two files would make
    Prometheus refuse them both."""
    if not settings.scrape_files:
        return
    settings = keyed(kube, settings)
    listed = set(models)
    watched = settings.watched_namespaces

    def sweeping(configmap: tuple[str, str]) -> FileChange:
        def unwanted(job_name: str) -> bool:
            model = prometheus.model_of_job(job_name)
            if model is None or (
                watched and not any(fnmatch.fnmatch(model[0], glob) for glob in watched)
            ):
                return False
            return scrape_config_map(settings, *model) != configmap or (
                model not in listed and kube.get_model(*model) is None
            )

        return lambda text: (
            prometheus.without_scrape_jobs(text, unwanted) if text is not None else None
        )

    # A file that cannot be read or written stops the sweep of none of the others.
    failures = []
    for configmap in scrape_config_maps(settings):
        try:
            _edit_file(kube, configmap, _checked(configmap, sweeping(configmap)))
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
