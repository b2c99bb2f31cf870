"""The scrape job, the scrape config file it goes into, and the merge into that file."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml
from local_prometheus import local_scrape_job
from modelops_operator import registration
from modelops_operator.monitoring.prometheus import (
    SCRAPE_FILES,
    FileBudget,
    ScrapeFileFull,
    build_scrape_job,
    build_service_monitor,
    scrape_file_index,
    scrape_job_name,
    unkeyed_scrape_file_index,
    with_scrape_job,
    without_scrape_job,
)
from modelops_operator.settings import Settings

USER_CONFIG = """\
# Kept by the cluster admins.
global:
  scrape_interval: 30s
  external_labels: {cluster: eu-1}
rule_files: [/etc/prometheus/rules/*.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['alertmanager:9093']}]
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['node-exporter:9100']}]
  - job_name: apiserver
    scheme: https
    kubernetes_sd_configs: [{role: endpoints}]
"""

KEY = "0123456789abcdef" * 4
IRIS = build_scrape_job("ml", "iris", "15s")
WINE = build_scrape_job("ml", "wine", "30s")


def _jobs(text: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load(text)["scrape_configs"])


def _job_names(text: str) -> list[str]:
    return [job["job_name"] for job in _jobs(text)]


def test_the_job_scrapes_the_models_server_pods_in_its_namespace() -> None:
    sd_config = IRIS["kubernetes_sd_configs"][0]

    assert IRIS["job_name"] == scrape_job_name("ml", "iris") == "modelops/ml/iris"
    assert IRIS["scrape_interval"] == "15s"
    assert IRIS["metrics_path"] == "/metrics"
    assert sd_config["role"] == "pod"
    assert sd_config["namespaces"] == {"names": ["ml"]}
    # Every model of a namespace discovers alike (Prometheus runs one discovery for them all)
    # and keeps its own pods by their model label.
    assert sd_config["selectors"] == [
        {
            "role": "pod",
            "label": "app.kubernetes.io/managed-by=modelops,app.kubernetes.io/component=server",
        }
    ]
    assert build_scrape_job("ml", "wine", "30s")["kubernetes_sd_configs"] == [sd_config]
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_modelops_dev_model"],
        "regex": "iris",
        "action": "keep",
    } in IRIS["relabel_configs"]
    assert {
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "http",
        "action": "keep",
    } in IRIS["relabel_configs"]


def test_the_job_labels_series_with_namespace_model_version_and_pod() -> None:
    labelled = {
        rule["target_label"]: rule for rule in IRIS["relabel_configs"] if "target_label" in rule
    }

    assert labelled["namespace"]["replacement"] == "ml"
    assert labelled["model"]["replacement"] == "iris"
    assert labelled["version"]["source_labels"] == [
        "__meta_kubernetes_pod_label_modelops_dev_version"
    ]
    assert labelled["pod"]["source_labels"] == ["__meta_kubernetes_pod_name"]


def test_the_local_job_scrapes_a_static_target_with_the_same_labels() -> None:
    local = local_scrape_job(IRIS, "127.0.0.1:8080", version="v0123456789ab")
    labelled = {rule["target_label"] for rule in local["relabel_configs"]}

    assert "kubernetes_sd_configs" not in local
    assert local["static_configs"] == [
        {"targets": ["127.0.0.1:8080"], "labels": {"version": "v0123456789ab"}}
    ]
    assert labelled == {"namespace", "model"}
    assert {key: local[key] for key in ("job_name", "scrape_interval", "metrics_path")} == {
        key: IRIS[key] for key in ("job_name", "scrape_interval", "metrics_path")
    }
    assert "labels" not in local_scrape_job(IRIS, "127.0.0.1:8080")["static_configs"][0]


@pytest.mark.parametrize("empty", ["", None, "\n", "# nothing yet\n"])
def test_an_empty_config_gets_just_the_job(empty: str | None) -> None:
    assert yaml.safe_load(with_scrape_job(empty, IRIS)) == {"scrape_configs": [IRIS]}


def test_adding_keeps_the_users_jobs_and_settings() -> None:
    merged = with_scrape_job(with_scrape_job(USER_CONFIG, IRIS), WINE)
    before, after = yaml.safe_load(USER_CONFIG), yaml.safe_load(merged)

    assert {key: value for key, value in after.items() if key != "scrape_configs"} == {
        key: value for key, value in before.items() if key != "scrape_configs"
    }
    assert after["scrape_configs"] == [*before["scrape_configs"], IRIS, WINE]


def test_adding_again_replaces_the_job_in_place() -> None:
    merged = with_scrape_job(with_scrape_job(USER_CONFIG, IRIS), WINE)
    faster = build_scrape_job("ml", "iris", "5s")

    replaced = with_scrape_job(merged, faster)

    assert _job_names(replaced) == _job_names(merged)
    assert _jobs(replaced)[2] == faster


def test_a_job_of_the_same_model_in_another_namespace_is_another_job() -> None:
    merged = with_scrape_job(with_scrape_job("", IRIS), build_scrape_job("staging", "iris", "15s"))

    assert _job_names(merged) == ["modelops/ml/iris", "modelops/staging/iris"]


def test_an_unchanged_config_comes_back_as_the_same_text() -> None:
    merged = with_scrape_job(USER_CONFIG, IRIS)
    commented = "# a comment the next write would lose\n" + merged

    assert with_scrape_job(merged, IRIS) == merged
    assert with_scrape_job(commented, IRIS) == commented
    assert without_scrape_job(USER_CONFIG, "modelops/ml/absent") == USER_CONFIG
    assert without_scrape_job(None, "modelops/ml/iris") == ""


def test_output_is_deterministic_and_keeps_the_key_order() -> None:
    first = with_scrape_job(USER_CONFIG, IRIS)

    assert first == with_scrape_job(USER_CONFIG, build_scrape_job("ml", "iris", "15s"))
    assert list(yaml.safe_load(first)) == ["global", "rule_files", "alerting", "scrape_configs"]


def test_the_file_is_written_as_json_one_job_a_line_and_read_as_yaml_too() -> None:
    merged = with_scrape_job(with_scrape_job(USER_CONFIG, IRIS), WINE)

    assert json.loads(merged) == yaml.safe_load(merged)
    job_lines = [line.strip().rstrip(",") for line in merged.splitlines() if "job_name" in line]
    assert [json.loads(line) for line in job_lines] == _jobs(merged)
    # A file someone wrote as YAML is read as YAML; one in YAML's flow style too.
    flow = "{scrape_configs: [{job_name: node}]}"
    assert _job_names(with_scrape_job(flow, IRIS)) == ["node", IRIS["job_name"]]


def test_removing_takes_out_only_that_job() -> None:
    merged = with_scrape_job(with_scrape_job(USER_CONFIG, IRIS), WINE)

    removed = without_scrape_job(merged, IRIS["job_name"])

    assert _job_names(removed) == ["node", "apiserver", "modelops/ml/wine"]
    assert yaml.safe_load(without_scrape_job(removed, WINE["job_name"])) == yaml.safe_load(
        USER_CONFIG
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("global: [unclosed\n", "not valid YAML"),
        ("- job_name: a\n", "mapping at the top level"),
        ("scrape_configs: {job_name: a}\n", "scrape_configs must be a list"),
        ("scrape_configs: [just-a-string]\n", "scrape_configs must be a list"),
    ],
)
def test_a_malformed_config_is_refused_with_the_reason(text: str, problem: str) -> None:
    for change in (lambda: with_scrape_job(text, IRIS), lambda: without_scrape_job(text, "x")):
        with pytest.raises(ValueError, match=problem):
            change()


def test_a_service_monitor_labels_its_targets_as_the_scrape_job_does() -> None:
    """The dashboards filter on these labels, whichever way the model is scraped."""
    job = build_scrape_job("ml", "iris", "20s")
    [endpoint] = build_service_monitor("ml", "iris", "20s")["spec"]["endpoints"]
    spelled = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    *labels, job_label = endpoint["relabelings"]
    assert [{spelled.get(key, key): value for key, value in rule.items()} for rule in labels] == [
        rule for rule in job["relabel_configs"] if "target_label" in rule
    ]
    assert job_label == {"targetLabel": "job", "replacement": job["job_name"]}
    assert (endpoint["interval"], endpoint["path"]) == (job["scrape_interval"], job["metrics_path"])


def test_models_spread_evenly_over_the_files_and_always_to_the_same_one() -> None:
    per_file = Counter(scrape_file_index("ml", f"model-{index}", KEY) for index in range(5000))

    assert set(per_file) == set(range(SCRAPE_FILES))
    assert max(per_file.values()) < 1.3 * 5000 / SCRAPE_FILES
    assert scrape_file_index("ml", "iris", KEY) == scrape_file_index("ml", "iris", KEY)


def test_without_the_operators_key_no_one_can_tell_which_names_share_a_file() -> None:
    """The hash that anyone could compute (the names alone) put a tenant's models where it
    chose; under another key the same names scatter over the files."""
    aimed = [
        name
        for name in (f"a{index}" for index in range(20_000))
        if unkeyed_scrape_file_index("tenant", name) == unkeyed_scrape_file_index("ml", "iris")
    ][:200]
    for key in (KEY, "another key"):
        landed = Counter(scrape_file_index("tenant", name, key) for name in aimed)
        assert max(landed.values()) < 20, landed
        assert landed[scrape_file_index("ml", "iris", key)] < 20


def _jobs_of(namespace: str, count: int) -> list[dict[str, Any]]:
    return [build_scrape_job(namespace, f"m{index:02d}", "15s") for index in range(count)]


def test_a_namespace_takes_at_most_its_share_of_a_file_and_a_full_file_says_so() -> None:
    size = len(json.dumps(IRIS))
    budget = FileBudget(file_bytes=6 * size + 200, namespace_bytes=int(2.5 * size))
    text = ""
    for job in _jobs_of("tenant", 2):
        text = with_scrape_job(text, job, budget)
    with pytest.raises(ScrapeFileFull, match="namespace tenant's jobs would take"):
        with_scrape_job(text, build_scrape_job("tenant", "m99", "15s"), budget)
    # The jobs already there are kept as they are, and may change within their share.
    assert with_scrape_job(text, _jobs_of("tenant", 1)[0], budget) == text
    text = with_scrape_job(text, build_scrape_job("tenant", "m00", "1m"), budget)
    # Other namespaces still have room, until the file is full.
    for namespace in ("ml", "dev"):
        for job in _jobs_of(namespace, 2):
            text = with_scrape_job(text, job, budget)
    with pytest.raises(ScrapeFileFull, match="the file is full"):
        with_scrape_job(text, build_scrape_job("prod", "m00", "15s"), budget)
    assert len(_job_names(text)) == 6


def test_each_file_is_a_configmap_of_its_own_with_a_key_named_after_it() -> None:
    settings = Settings(scrape_configs="monitoring/scrape")
    configmaps = registration.scrape_config_maps(settings)

    assert configmaps[0] == ("monitoring", "scrape-00")
    assert configmaps[-1] == ("monitoring", f"scrape-{SCRAPE_FILES - 1}")
    assert len(set(configmaps)) == SCRAPE_FILES
    assert registration.scrape_file_key("scrape-07") == "scrape-07.yml"
    assert (
        registration.scrape_config_map(settings, "ml", "iris")
        == (configmaps[scrape_file_index("ml", "iris", "")])
    )
