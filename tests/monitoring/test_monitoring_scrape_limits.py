"""Prometheus' per-scrape limits on every model's job: defaults that the inference server's own
/metrics stays well within, the operator's settings, and a model's own, capped by the operator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from modelops_operator import api
from modelops_operator.monitoring.prometheus import (
    DEFAULT_LIMITS,
    Limits,
    body_size_bytes,
    build_scrape_job,
    build_service_monitor,
    scrape_limits,
)
from modelops_operator.settings import Settings
from modelops_server import metrics as server_metrics
from modelops_server.app import create_app
from modelops_server.metrics import Metrics
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

PROTO = Path(server_metrics.__file__).parent / "grpc_api" / "inference.proto"
# What the scrape job adds to every series, at its longest: a model name has at most 40
# characters, a namespace 63, a pod name 63 (its Deployment's name and two hashes).
TARGET_LABELS = {
    "job": "modelops/" + "n" * 63 + "/" + "m" * api.MAX_NAME_LENGTH,
    "instance": "10.244.255.255:8080",
    "namespace": "n" * 63,
    "model": "m" * api.MAX_NAME_LENGTH,
    "version": "v0123456789ab",
    "pod": "p" * 63,
}
LIMIT_KEYS = (
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "body_size_limit",
)
SERVICE_MONITOR_KEYS = (
    "sampleLimit",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "bodySizeLimit",
)


def test_every_job_has_all_five_limits_and_its_service_monitor_the_same() -> None:
    job = build_scrape_job("ml", "iris", "15s")
    monitor = build_service_monitor("ml", "iris", "15s")["spec"]

    assert [job[key] for key in LIMIT_KEYS] == [5000, 30, 128, 1024, "8MB"]
    assert [monitor[key] for key in SERVICE_MONITOR_KEYS] == [job[key] for key in LIMIT_KEYS]


def test_a_models_own_limits_reach_its_job_and_service_monitor() -> None:
    limits = Limits(20000, 40, 200, 2048, "32MB")
    job = build_scrape_job("ml", "iris", "15s", limits)
    monitor = build_service_monitor("ml", "iris", "15s", limits)["spec"]

    assert [job[key] for key in LIMIT_KEYS] == [20000, 40, 200, 2048, "32MB"]
    assert [monitor[key] for key in SERVICE_MONITOR_KEYS] == [20000, 40, 200, 2048, "32MB"]


def _asked(**fields: Any) -> api.ScrapeLimits:
    return api.ScrapeLimits.model_validate(fields)


@pytest.mark.parametrize(
    ("asked", "defaults", "ceilings", "expected", "capped"),
    [
        # Nothing asked, nothing set: the built-in defaults.
        ({}, {}, None, DEFAULT_LIMITS, []),
        # The operator's defaults replace the built-in ones field by field.
        (
            {},
            {"sampleLimit": 10000, "bodySizeLimit": "16MB"},
            None,
            Limits(10000, 30, 128, 1024, "16MB"),
            [],
        ),
        # A model may always ask for less.
        ({"sampleLimit": 100, "labelLimit": 12}, {}, None, Limits(100, 12, 128, 1024, "8MB"), []),
        # More than the default, with no ceiling set: the default is the most.
        (
            {"sampleLimit": 1_000_000, "bodySizeLimit": "1GB"},
            {},
            None,
            DEFAULT_LIMITS,
            [
                "sampleLimit 1000000 is above the operator's most, 5000",
                "bodySizeLimit 1GB is above the operator's most, 8MB",
            ],
        ),
        # Up to the ceiling the operator allows, and no further.
        (
            {"sampleLimit": 20000, "labelValueLengthLimit": 9999, "bodySizeLimit": "12288KB"},
            {},
            {"sampleLimit": 50000, "labelValueLengthLimit": 4096, "bodySizeLimit": "16MB"},
            Limits(20000, 30, 128, 4096, "12288KB"),
            ["labelValueLengthLimit 9999 is above the operator's most, 4096"],
        ),
    ],
)
def test_a_model_may_lower_its_limits_and_raise_them_only_as_far_as_the_operator_allows(
    asked: dict[str, Any],
    defaults: dict[str, Any],
    ceilings: dict[str, Any] | None,
    expected: Limits,
    capped: list[str],
) -> None:
    limits = scrape_limits(
        _asked(**asked),
        _asked(**defaults),
        None if ceilings is None else _asked(**ceilings),
    )

    assert limits == (expected, capped)


def test_the_spec_refuses_a_limit_that_would_turn_the_limit_off_or_a_size_without_a_unit() -> None:
    for wrong in ({"sampleLimit": 0}, {"labelLimit": -1}, {"bodySizeLimit": "8"}):
        with pytest.raises(ValueError):
            api.PrometheusMonitoring.model_validate(wrong)
    assert [body_size_bytes(size) for size in ("512B", "4KB", "8MB", "1GB")] == [
        512,
        4096,
        8 * 1024**2,
        1024**3,
    ]


def test_the_operator_reads_its_defaults_and_ceilings_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELOPS_SCRAPE_LIMITS", '{"sampleLimit": 10000}')
    monkeypatch.setenv("MODELOPS_SCRAPE_MAX_LIMITS", '{"sampleLimit": 40000}')
    settings = Settings()

    assert scrape_limits(
        _asked(sampleLimit=30000), settings.scrape_limits, settings.scrape_max_limits
    ) == (Limits(30000, 30, 128, 1024, "8MB"), [])
    assert scrape_limits(_asked(), settings.scrape_limits, settings.scrape_max_limits) == (
        Limits(10000, 30, 128, 1024, "8MB"),
        [],
    )


def _busiest_server_scrape() -> str:
    """The /metrics of a server that has answered on every route and gRPC method with every
    status code it gives, and predicted 20,000 classes of 64-character names."""
    metrics = Metrics()
    app = create_app(mock.MagicMock(), metrics, mock.MagicMock(), load_on_startup=False)
    routes = {path for route in app.routes if (path := getattr(route, "path", None))}
    methods = re.findall(r"rpc (\w+)", PROTO.read_text())
    endpoints = [
        *routes,
        "/predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        *(f"/inference.GRPCInferenceService/{method}" for method in methods),
        "unmatched",
    ]
    assert len(methods) == 6 and len(routes) > 15
    for endpoint in endpoints:
        for code in (200, 400, 404, 405, 413, 415, 422, 499, 500, 503):
            for seconds in (0.00001, 1.0, 10.0):
                metrics.request(endpoint, code, seconds)
    for rows in (1, 100, 100_000):
        metrics.batch(rows)
        metrics.batched(rows)
    metrics.predicted((f"{index:064d}", 1) for index in range(20_000))
    metrics.model_loaded(
        "m" * api.MAX_NAME_LENGTH,
        "v0123456789ab",
        "0" * 64,
        "scikit-learn",
        {metric: 0.5 for metric in api.CLASSIFICATION_METRICS},
    )
    return generate_latest(metrics.registry).decode()


def test_the_servers_busiest_scrape_is_well_within_the_default_limits() -> None:
    """A model's own server must never lose its scrapes to the defaults: Prometheus drops a
    scrape past any limit whole. A model with many classes stays within them because the server
    counts predictions for its first MAX_CLASS_SERIES classes apart, and the rest together."""
    text = _busiest_server_scrape()
    samples = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]
    # Prometheus keeps the server's `version` as `exported_version` beside the target's.
    label_sets = [
        {"__name__": sample.name, **TARGET_LABELS}
        | {
            ("exported_" + key if key in TARGET_LABELS else key): value
            for key, value in sample.labels.items()
        }
        for sample in samples
    ]
    classes = {sample.labels["class"] for sample in samples if "class" in sample.labels}

    assert len(classes) == server_metrics.MAX_CLASS_SERIES + 1
    assert server_metrics.OTHER_CLASSES in classes
    assert len(samples) < DEFAULT_LIMITS.sample_limit / 2, len(samples)
    assert max(map(len, label_sets)) <= DEFAULT_LIMITS.label_limit / 2
    assert max(len(name) for labels in label_sets for name in labels) < 32
    assert (
        max(len(value) for labels in label_sets for value in labels.values())
        < DEFAULT_LIMITS.label_value_length_limit / 4
    )
    assert len(text.encode()) < body_size_bytes(DEFAULT_LIMITS.body_size_limit) / 8
