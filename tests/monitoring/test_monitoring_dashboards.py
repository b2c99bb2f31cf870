"""The per-model and fleet dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelops_operator.monitoring import fleet_dashboard
from modelops_operator.monitoring.grafana import (
    DATASOURCE_UID,
    build_dashboard,
    build_fleet_dashboard,
    dashboard_key,
    dashboard_queries,
)

ROOT = Path(__file__).resolve().parents[2]
FLEET_FILE = ROOT / "deploy" / "base" / "monitoring" / "fleet-dashboard.json"
IRIS = build_dashboard("ml", "iris")


def _titles(dashboard: dict[str, Any]) -> list[str]:
    return [panel["title"] for panel in dashboard["panels"]]


def test_the_model_dashboard_has_a_panel_for_each_question() -> None:
    assert _titles(IRIS) == [
        "Ready replicas",
        "Model version",
        "Training metrics",
        "Request rate",
        "Errors by status code",
        "Latency",
        "Batch size",
        "Predictions by class",
    ]


def test_every_query_selects_only_the_models_series() -> None:
    queries = dashboard_queries(IRIS)

    assert len(queries) == 12
    for query in queries:
        metric_selectors = query.count("{")
        assert query.count('namespace="ml",model="iris"') == metric_selectors, query


def test_the_dashboard_queries_the_agreed_metric_names() -> None:
    queries = "\n".join(dashboard_queries(IRIS))

    for metric in (
        "up{",
        "modelops_requests_total{",
        "modelops_request_duration_seconds_bucket{",
        "modelops_batch_size_bucket{",
        "modelops_batch_size_sum{",
        "modelops_batch_size_count{",
        "modelops_batched_requests_sum{",
        "modelops_batched_requests_count{",
        "modelops_predictions_total{",
        "modelops_model_info{",
        "modelops_model_metric{",
    ):
        assert metric in queries


def test_every_panel_uses_the_prometheus_datasource_uid() -> None:
    for dashboard in (IRIS, build_fleet_dashboard()):
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}


def test_panels_have_unique_ids_and_targets_unique_ref_ids() -> None:
    ids = [panel["id"] for panel in IRIS["panels"]]

    assert len(set(ids)) == len(ids)
    for panel in IRIS["panels"]:
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids)


def test_uid_and_key_are_deterministic_and_distinct_per_model() -> None:
    assert build_dashboard("ml", "iris") == IRIS
    uids = {
        build_dashboard(namespace, name)["uid"]
        for namespace, name in [("ml", "iris"), ("ml", "wine"), ("staging", "iris")]
    }
    assert len(uids) == 3
    long_names = build_dashboard("n" * 63, "m" * 40)["uid"]
    assert all(len(uid) <= 40 for uid in {*uids, long_names})


def test_dashboard_keys_never_collide() -> None:
    # With '-' as the separator both would be modelops-a-b-c.json.
    assert dashboard_key("a-b", "c") != dashboard_key("a", "b-c")
    assert dashboard_key("ml", "iris") == "modelops_ml_iris.json"


def test_queries_are_found_inside_collapsed_rows() -> None:
    collapsed = {
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "up", "refId": "A"}]}]},
            {"targets": [{"refId": "B"}]},
        ]
    }

    assert dashboard_queries(collapsed) == ["up"]


def test_the_fleet_dashboard_shows_every_model_of_the_operator() -> None:
    fleet = build_fleet_dashboard()

    assert _titles(fleet) == [
        "Request rate per model",
        "Server error ratio per model",
        "p99 latency per model",
        "Model versions",
    ]
    for query in dashboard_queries(fleet):
        assert query.count('job=~"modelops/.+"') == query.count("{"), query


def test_the_committed_fleet_dashboard_is_generated() -> None:
    assert FLEET_FILE.read_text() == fleet_dashboard.render(), (
        "run: python -m modelops_operator.monitoring.fleet_dashboard > " + str(FLEET_FILE)
    )
