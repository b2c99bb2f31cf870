"""Grafana dashboards: one per model, and one across the fleet. Pure, built with the Grafana
Foundation SDK. A model's dashboard is a ConfigMap of its own, owned by the model, carrying the
label that the dashboard sidecar of the common Grafana setups (kube-prometheus-stack, the Grafana
chart, and deploy/base/monitoring) collects from every namespace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models.common import BigValueTextMode, LegendDisplayMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from modelops_operator import builders, constants
from modelops_operator.monitoring import metrics
from modelops_operator.monitoring.prometheus import JOB_PREFIX

# Every panel queries the Prometheus datasource provisioned with this uid (docs/observability.md).
DATASOURCE_UID = "prometheus"
FLEET_UID = "modelops-fleet"
# Grafana sizes the window to the scrape interval and the panel's resolution.
RATE_WINDOW = "$__rate_interval"
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
_DATASOURCE = dashboard_model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
_STAT_HEIGHT = 5
_GRAPH_HEIGHT = 8

Panel = stat.Panel | table.Panel | timeseries.Panel


def _equals(label: str, value: str) -> str:
    # A JSON string is a valid PromQL string literal, escapes included.
    return f"{label}={json.dumps(value)}"


def _matches(label: str, regex: str) -> str:
    return f"{label}=~{json.dumps(regex)}"


_PREDICTION_ENDPOINTS = _matches("endpoint", metrics.PREDICTION_ENDPOINTS)


@dataclass(frozen=True)
class Series:
    """The label matchers every query of a dashboard carries, and the queries built on them."""

    matchers: tuple[str, ...]

    def select(self, metric: str, *matchers: str) -> str:
        return f"{metric}{{{','.join((*self.matchers, *matchers))}}}"

    def rate(self, metric: str, *matchers: str) -> str:
        return f"rate({self.select(metric, *matchers)}[{RATE_WINDOW}])"

    def quantile(
        self, quantile: float, histogram: str, *matchers: str, by: tuple[str, ...] = ()
    ) -> str:
        buckets = self.rate(f"{histogram}_bucket", *matchers)
        return f"histogram_quantile({quantile}, sum by ({', '.join((*by, 'le'))}) ({buckets}))"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


# The dashboard sidecar's convention: ConfigMaps with this label hold dashboards.
SIDECAR_LABELS = {"grafana_dashboard": "1"}
DASHBOARD_KEY_PREFIX = "modelops_"
DASHBOARD_KEY_SUFFIX = ".json"


def dashboard_key(namespace: str, name: str) -> str:
    # The sidecar writes every ConfigMap's keys into one directory: '_' occurs in neither a
    # namespace nor a model name, so no two models share a file name.
    return f"{DASHBOARD_KEY_PREFIX}{namespace}_{name}{DASHBOARD_KEY_SUFFIX}"


def build_dashboard_configmap(namespace: str, name: str) -> dict[str, Any]:
    """The model's dashboard as the ConfigMap the sidecar collects."""
    dashboard_json = json.dumps(build_dashboard(namespace, name), indent=1, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": constants.DASHBOARD_NAME.format(name=name),
            "namespace": namespace,
            "labels": builders.labels(name, "dashboard") | SIDECAR_LABELS,
        },
        "data": {dashboard_key(namespace, name): dashboard_json},
    }


def dashboard_uid(namespace: str, name: str) -> str:
    # Grafana uids are at most 40 characters; a namespace and a model name may be 103.
    return f"modelops-{builders.digest([namespace, name], length=24)}"


def build_dashboard(namespace: str, name: str) -> dict[str, Any]:
    """One model's dashboard: what is served, its traffic, errors, latency, batches and
    predictions. Every query selects the model's series by their namespace and model labels."""
    model = Series((_equals("namespace", namespace), _equals("model", name)))
    panels: list[Panel] = [
        _stat("Ready replicas", "short", Query(f"sum({model.select('up')})", "ready")),
        _table(
            "Model version", Query(f"max by (version, sha256) ({model.select(metrics.MODEL_INFO)})")
        ),
        _stat(
            "Training metrics",
            "none",
            Query(
                f"max by (version, metric) ({model.select(metrics.MODEL_METRIC)})",
                "{{metric}} {{version}}",
            ),
        ),
        _timeseries(
            "Request rate",
            "reqps",
            Query(f"sum by (endpoint) ({model.rate(metrics.REQUESTS)})", "{{endpoint}}"),
        ),
        _timeseries(
            "Errors by status code",
            "reqps",
            Query(
                f"sum by (code) ({model.rate(metrics.REQUESTS, _matches('code', '4..|5..'))})",
                "{{code}}",
            ),
        ),
        _timeseries(
            "Latency",
            "s",
            *(
                Query(
                    model.quantile(quantile, metrics.REQUEST_DURATION, _PREDICTION_ENDPOINTS),
                    _percentile(quantile),
                )
                for quantile in LATENCY_QUANTILES
            ),
        ),
        _timeseries(
            "Batch size",
            "short",
            Query(
                f"sum({model.rate(f'{metrics.BATCH_SIZE}_sum')})"
                f" / sum({model.rate(f'{metrics.BATCH_SIZE}_count')})",
                "mean",
            ),
            Query(model.quantile(0.95, metrics.BATCH_SIZE), "p95"),
            # Only a model scikit-learn runs itself has calls to count; a compiled one, no data.
            Query(
                f"sum({model.rate(f'{metrics.BATCHED_REQUESTS}_sum')})"
                f" / sum({model.rate(f'{metrics.BATCHED_REQUESTS}_count')})",
                "requests per scikit-learn call",
            ),
        ),
        _timeseries(
            "Predictions by class",
            "reqps",
            Query(f"sum by (class) ({model.rate(metrics.PREDICTIONS)})", "{{class}}"),
        ),
    ]
    return _render(
        dashboard.Dashboard(f"Model {namespace}/{name}")
        .uid(dashboard_uid(namespace, name))
        .description(f"The ModelDeployment {name} in namespace {namespace}."),
        panels,
    )


def build_fleet_dashboard() -> dict[str, Any]:
    """Every model side by side, one series per namespace/model."""
    # Only series of the operator's scrape jobs: other jobs scraping the same pods lack labels.
    fleet = Series((_matches("job", f"{JOB_PREFIX}.+"),))
    per_model = ("namespace", "model")
    by_model = "sum by (namespace, model)"
    requests = f"{by_model} ({fleet.rate(metrics.REQUESTS)})"
    server_errors = f"{by_model} ({fleet.rate(metrics.REQUESTS, _matches('code', '5..'))})"
    legend = "{{namespace}}/{{model}}"
    panels: list[Panel] = [
        _timeseries("Request rate per model", "reqps", Query(requests, legend)),
        _timeseries(
            "Server error ratio per model",
            "percentunit",
            # `or 0 * ...` shows 0 for a model without 5xx responses rather than no series.
            Query(f"({server_errors} or 0 * {requests}) / {requests}", legend),
        ),
        _timeseries(
            "p99 latency per model",
            "s",
            Query(
                fleet.quantile(0.99, metrics.REQUEST_DURATION, _PREDICTION_ENDPOINTS, by=per_model),
                legend,
            ),
        ),
        _table(
            "Model versions",
            Query(
                f"max by (namespace, model, version, sha256) ({fleet.select(metrics.MODEL_INFO)})"
            ),
        ),
    ]
    return _render(
        dashboard.Dashboard("ModelOps fleet")
        .uid(FLEET_UID)
        .description("All models served by the modelops operator."),
        panels,
    )


def dashboard_queries(dashboard_json: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard, in panel order."""
    return [
        target["expr"]
        for panel in _panels(dashboard_json.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    # A collapsed row keeps its panels inside itself.
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _percentile(quantile: float) -> str:
    return f"p{round(quantile * 100)}"


def _targets(queries: tuple[Query, ...], instant: bool = False) -> list[Builder[Dataquery]]:
    targets: list[Builder[Dataquery]] = []
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        if query.legend:
            target = target.legend_format(query.legend)
        if instant:
            target = target.instant().format(PromQueryFormat.TABLE)
        targets.append(target)
    return targets


def _stat(title: str, unit: str, *queries: Query) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .height(_STAT_HEIGHT)
        .span(8)
        .text_mode(BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .targets(_targets(queries))
    )


def _table(title: str, query: Query) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .height(_STAT_HEIGHT)
        .span(8)
        .show_header(True)
        # An instant query's table also has Time and Value columns; only the labels inform.
        .with_transformation(
            dashboard_model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}
            )
        )
        .targets(_targets((query,), instant=True))
    )


def _timeseries(title: str, unit: str, *queries: Query) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .height(_GRAPH_HEIGHT)
        .span(12)
        .legend(common.VizLegendOptions().display_mode(LegendDisplayMode.LIST).show_legend(True))
        .targets(_targets(queries))
    )


def _render(board: dashboard.Dashboard, panels: list[Panel]) -> dict[str, Any]:
    board = board.tags(["modelops"]).refresh("30s").time("now-1h", "now")
    for panel_id, panel in enumerate(panels, start=1):
        # Explicit ids: Grafana links and panel views need them, and builds stay identical.
        board = board.with_panel(panel.id(panel_id).datasource(_DATASOURCE))
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded
