"""Prometheus scrape jobs for the serving pods, and their merge into the scrape config files
that hold them.

The jobs are spread over SCRAPE_FILES files (one ConfigMap each) by a keyed hash of the model's
namespace and name, which Prometheus loads through `scrape_config_files`: no object grows with
the fleet past a small fraction of Kubernetes' 1 MiB limit, and no tenant can aim its own jobs at
another's file, nor take more than its share of one (docs/observability.md).

Pure: text and dicts in, text and dicts out. The caller reads and writes the ConfigMaps.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import yaml
from pydantic.alias_generators import to_camel

from modelops_operator import api, builders, constants

JOB_PREFIX = "modelops/"
SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
METRICS_PATH = "/metrics"
_KUBERNETES_META = "__meta_kubernetes_"
# 32 files keep 5,000 models' jobs at about 14% of the 1 MiB limit each (160 jobs of ~900
# bytes), and the common case (one Prometheus) mounts them as one projected volume.
SCRAPE_FILES = 32
# Every modelops serving pod: one discovery configuration for all jobs of a namespace, which
# Prometheus runs once (it shares identical discovery configs between jobs) instead of one pod
# watch per model.
SERVING_PODS_SELECTOR = (
    f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY},{constants.LABEL_COMPONENT}=server"
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Prometheus' per-scrape limits of one model's job, every one set: a scrape past any of
    them is dropped whole (the target shows as down), so one model's pods cannot flood the
    Prometheus that every team shares."""

    sample_limit: int
    label_limit: int
    label_name_length_limit: int
    label_value_length_limit: int
    body_size_limit: str


# Sized on what the inference server exposes (docs/observability.md): at most about 1,900
# samples (29 routes by status code, their latency histograms, the batch histograms, and
# predictions for at most 1,000 classes; the server folds the rest into one series), at most 11
# labels with the target's, names of 16 characters and values of 113 (the job's name) besides
# class names, and well under 1 MB.
DEFAULT_LIMITS = Limits(
    sample_limit=5000,
    label_limit=30,
    label_name_length_limit=128,
    label_value_length_limit=1024,
    body_size_limit="8MB",
)
_BODY_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def body_size_bytes(size: str) -> int:
    """A body_size_limit (api.BODY_SIZE_PATTERN) in bytes, as Prometheus reads it."""
    matched = re.fullmatch(r"([0-9]+)([KMG]?B)", size)
    if matched is None:
        raise ValueError(f"{size!r} is not a size in B, KB, MB or GB")
    return int(matched[1]) * _BODY_SIZE_UNITS[matched[2]]


def scrape_limits(
    asked: api.ScrapeLimits, defaults: api.ScrapeLimits, ceilings: api.ScrapeLimits | None
) -> tuple[Limits, list[str]]:
    """The limits of a model's job, and what of the model's ask was capped and why.

    Each limit is the model's own (spec.monitoring.prometheus) or else the operator's default
    (`defaults`, then DEFAULT_LIMITS); a model's own may exceed the operator's ceiling
    (`ceilings`; None: the default is the ceiling) and is then capped to it, since raising a
    limit is what a flooding model would do."""
    chosen: dict[str, int | str] = {}
    capped = []
    for field in dataclasses.fields(Limits):
        default = getattr(defaults, field.name)
        if default is None:
            default = getattr(DEFAULT_LIMITS, field.name)
        ceiling = getattr(ceilings, field.name, None) if ceilings is not None else None
        ceiling = default if ceiling is None else ceiling
        value = getattr(asked, field.name)
        if value is None:
            chosen[field.name] = default
            continue
        size = body_size_bytes if field.name == "body_size_limit" else int
        if size(value) > size(ceiling):
            capped.append(f"{to_camel(field.name)} {value} is above the operator's most, {ceiling}")
            value = ceiling
        chosen[field.name] = value
    return Limits(**chosen), capped  # type: ignore[arg-type]


def scrape_job_name(namespace: str, name: str) -> str:
    return f"{JOB_PREFIX}{namespace}/{name}"


def scrape_file_index(namespace: str, name: str, key: str) -> int:
    """Which of the SCRAPE_FILES files holds the model's job: stable across restarts and
    replicas, so every writer and the sweep agree, and a job's name (the same model's) is only
    ever in one file. Keyed (HMAC-SHA256) with a key that only the operator holds: without it
    no one can tell which names share a file with another namespace's model, so no tenant can
    make models whose jobs all land in its victim's file."""
    hashed = hmac.new(key.encode(), f"{namespace}/{name}".encode(), hashlib.sha256).digest()
    return int.from_bytes(hashed[:4], "big") % SCRAPE_FILES


def unkeyed_scrape_file_index(namespace: str, name: str) -> int:
    """The file that operators before the keyed placement chose, which anyone could compute:
    where an upgraded operator finds a job to move."""
    hashed = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(hashed[:4], "big") % SCRAPE_FILES


@dataclasses.dataclass(frozen=True)
class FileBudget:
    """How much of a scrape config file jobs may take: all of them (below the 1 MiB an object
    may have, with room for a human's edit), and the jobs of one namespace."""

    file_bytes: int
    namespace_bytes: int


class ScrapeFileFull(ValueError):
    """A job that the file (or its namespace's share of it) has no room for: reported in the
    model's Monitored condition; the model keeps serving, unscraped."""


def has_scrape_job(config_text: str | None, job_name: str) -> bool:
    """Whether the file holds a job of that name; False for a file that is no scrape config."""
    try:
        jobs = _scrape_configs(_parse(config_text))
    except ValueError:
        return False
    return any(entry.get("job_name") == job_name for entry in jobs)


def model_of_job(job_name: str) -> tuple[str, str] | None:
    """(namespace, name) of the model a scrape job is for; None for anyone else's job."""
    namespace, _, name = job_name.removeprefix(JOB_PREFIX).partition("/")
    if not job_name.startswith(JOB_PREFIX) or not namespace or not name or "/" in name:
        return None
    return namespace, name


def _pod_label_meta(label: str) -> str:
    """The discovery meta label of a pod label: Prometheus turns every other character into _."""
    sanitized = "".join(char if char.isalnum() else "_" for char in label)
    return f"{_KUBERNETES_META}pod_label_{sanitized}"


def _target_labels(namespace: str, name: str) -> list[dict[str, Any]]:
    """The labels the dashboards filter on. namespace and model are static (a replace without
    source labels writes the replacement as is), so that a job pointed at static targets
    labels alike; version and pod come from pod metadata."""
    return [
        {"target_label": "namespace", "replacement": namespace},
        {"target_label": "model", "replacement": name},
        {"source_labels": [_pod_label_meta(constants.LABEL_VERSION)], "target_label": "version"},
        {"source_labels": [f"{_KUBERNETES_META}pod_name"], "target_label": "pod"},
    ]


# The Prometheus Operator spells relabeling fields in camelCase.
_OPERATOR_SPELLING = {"source_labels": "sourceLabels", "target_label": "targetLabel"}


def build_scrape_job(
    namespace: str, name: str, interval: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """One scrape_config for the model's serving pods, labelled namespace/model/version/pod,
    within `limits`."""
    return {
        "job_name": scrape_job_name(namespace, name),
        "scrape_interval": interval,
        "metrics_path": METRICS_PATH,
        **dataclasses.asdict(limits),
        "kubernetes_sd_configs": [
            {
                "role": "pod",
                "namespaces": {"names": [namespace]},
                # Filtered by the apiserver, so Prometheus never lists the namespace's other
                # pods; the same for every model of the namespace, so discovered once.
                "selectors": [{"role": "pod", "label": SERVING_PODS_SELECTOR}],
            }
        ],
        "relabel_configs": [
            {
                "source_labels": [_pod_label_meta(constants.LABEL_MODEL)],
                "regex": name,
                "action": "keep",
            },
            # Pod discovery yields one target per container port; only the server's is wanted.
            {
                "source_labels": [f"{_KUBERNETES_META}pod_container_port_name"],
                "regex": builders.SERVER_PORT_NAME,
                "action": "keep",
            },
            # Evicted and completed pods stay listed until deleted; they would count as down.
            {
                "source_labels": [f"{_KUBERNETES_META}pod_phase"],
                "regex": "Succeeded|Failed",
                "action": "drop",
            },
            *_target_labels(namespace, name),
        ],
    }


def build_service_monitor(
    namespace: str, name: str, interval: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """The Prometheus Operator's form of the scrape job: the model's Service's endpoints, with
    the same target labels and limits, so the dashboards work either way. (A Prometheus
    resource's enforced limits, where set, lower these further.)"""
    server_labels = builders.labels(name, "server")
    return builders.with_spec_hash(
        {
            "apiVersion": SERVICE_MONITOR_API_VERSION,
            "kind": "ServiceMonitor",
            "metadata": {
                "name": constants.SERVICE_NAME.format(name=name),
                "namespace": namespace,
                "labels": server_labels,
            },
            "spec": {
                "selector": {"matchLabels": server_labels},
                "namespaceSelector": {"matchNames": [namespace]},
                **{to_camel(key): value for key, value in dataclasses.asdict(limits).items()},
                "endpoints": [
                    {
                        "port": builders.SERVER_PORT_NAME,
                        "path": METRICS_PATH,
                        "interval": interval,
                        "relabelings": [
                            *(
                                {
                                    _OPERATOR_SPELLING.get(key, key): value
                                    for key, value in rule.items()
                                }
                                for rule in _target_labels(namespace, name)
                            ),
                            # The job the shared config would name: the fleet dashboard selects it.
                            {"targetLabel": "job", "replacement": scrape_job_name(namespace, name)},
                        ],
                    }
                ],
            },
        }
    )


def with_scrape_job(
    config_text: str | None, job: dict[str, Any], budget: FileBudget | None = None
) -> str:
    """The scrape config file with `job` added, or replacing the job of the same name in place.
    Within `budget`, where given: a job that would make the file, or its namespace's jobs in it,
    larger than that is refused (ScrapeFileFull); a job already there is never pushed out."""
    config = _parse(config_text)
    jobs = _scrape_configs(config)
    name = job["job_name"]
    position = next(
        (index for index, entry in enumerate(jobs) if entry.get("job_name") == name), len(jobs)
    )
    others = [entry for entry in jobs if entry.get("job_name") != name]
    merged = [*others[:position], job, *others[position:]]
    changed = _render_if_changed(config_text, config, merged)
    if budget is not None and len(changed) > len(config_text or ""):
        _check_budget(changed, merged, name, budget)
    return changed


def _check_budget(text: str, jobs: list[dict[str, Any]], job_name: str, budget: FileBudget) -> None:
    size = len(text.encode())
    if size > budget.file_bytes:
        raise ScrapeFileFull(
            f"the file is full: with this model's job it would take {size} bytes, more than "
            f"the {budget.file_bytes} a file may (MODELOPS_SCRAPE_FILE_BYTES); the model is not "
            "scraped until other jobs leave the file or the platform team raises the limit"
        )
    model = model_of_job(job_name)
    namespace = model[0] if model is not None else None
    taken = sum(
        len(json.dumps(entry, default=str).encode())
        for entry in jobs
        if (owner := model_of_job(str(entry.get("job_name", "")))) and owner[0] == namespace
    )
    if taken > budget.namespace_bytes:
        raise ScrapeFileFull(
            f"namespace {namespace}'s jobs would take {taken} bytes of the file, more than the "
            f"{budget.namespace_bytes} one namespace may (MODELOPS_SCRAPE_NAMESPACE_BYTES); the "
            "model is not scraped until the namespace has fewer models with a scrape job, or "
            "the platform team raises the limit"
        )


def without_scrape_job(config_text: str | None, job_name: str) -> str:
    """The scrape config file without the job named `job_name`."""
    return without_scrape_jobs(config_text, lambda name: name == job_name)


def without_scrape_jobs(config_text: str | None, unwanted: Callable[[str], bool]) -> str:
    """The scrape config file without the jobs whose name is `unwanted`."""
    config = _parse(config_text)
    jobs = _scrape_configs(config)
    return _render_if_changed(
        config_text, config, [entry for entry in jobs if not unwanted(entry.get("job_name", ""))]
    )


# Every model's reconcile reads its whole scrape config file: libyaml's C parser is ~10x faster.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(config_text: str | None) -> dict[str, Any]:
    """The parsed config; callers build new objects from it and never mutate it."""
    return _parse_text(config_text or "")


# Most reconciles find their job already in place: parsing each file once, not once per model,
# keeps that check cheap however many models there are.
@functools.lru_cache(maxsize=2 * SCRAPE_FILES)
def _parse_text(config_text: str) -> dict[str, Any]:
    try:
        config = _load(config_text)
    except yaml.YAMLError as error:
        raise ValueError(f"the scrape configuration is not valid YAML: {error}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(
            "the scrape configuration must be a mapping at the top level, not a "
            f"{type(config).__name__}"
        )
    return config


def _scrape_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = config.get("scrape_configs") or []
    if not isinstance(jobs, list) or not all(isinstance(entry, dict) for entry in jobs):
        raise ValueError("the scrape configuration's scrape_configs must be a list of mappings")
    return jobs


def _render_if_changed(
    config_text: str | None, config: dict[str, Any], jobs: list[dict[str, Any]]
) -> str:
    """The input itself when the jobs are unchanged, so that the caller can skip the write."""
    if jobs == _scrape_configs(config):
        return config_text or ""
    return _render(config | {"scrape_configs": jobs})


def _load(config_text: str) -> Any:
    if config_text.lstrip().startswith("{"):
        try:
            return json.loads(config_text)
        except json.JSONDecodeError:
            pass  # YAML's flow style, which JSON is a part of
    return yaml.load(config_text, Loader=_SafeLoader)


def _render(config: dict[str, Any]) -> str:
    """The file as JSON, which is YAML too: Prometheus reads it as it is, and a thousand models'
    creations write these files a thousand times, each read back first. Written and read by C
    code (PyYAML's representer and constructor are Python), that is a fraction of the CPU: the
    operator's largest cost while creating models had been these files. One job per line, so
    that each model's job stays easy to find. Key order is kept: equal input renders equal
    text."""
    entries = []
    for key, value in config.items():
        if key == "scrape_configs" and value:
            jobs = ",\n    ".join(json.dumps(job, default=str) for job in value)
            entries.append(f'  "scrape_configs": [\n    {jobs}\n  ]')
        else:
            entries.append(f"  {json.dumps(key)}: {json.dumps(value, default=str)}")
    return "{\n" + ",\n".join(entries) + "\n}\n"
