"""End to end with a real Prometheus: the scrape job scrapes a real inference server serving a
real trained model, and every query of the model's dashboard finds data."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_prometheus import (
    free_port,
    instant_query,
    local_scrape_job,
    running_process,
    running_prometheus,
)
from modelops_envtest.waiting import wait_until
from modelops_operator.monitoring import metrics
from modelops_operator.monitoring.grafana import (
    build_dashboard,
    build_fleet_dashboard,
    dashboard_queries,
)
from modelops_operator.monitoring.prometheus import (
    build_scrape_job,
    scrape_job_name,
    with_scrape_job,
)
from modelops_trainer import train
from promql import concrete

NAMESPACE, NAME = "e2e", "iris"
TRAINING = {"dataset": {"builtin": "iris"}, "estimator": "DecisionTreeClassifier"}
# One row of each iris species, so that every class gets predictions.
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 4.1, 1.0], [6.9, 3.1, 5.4, 2.1]]
PREDICTIONS = 30
BAD_REQUESTS = 4
SCRAPE_INTERVAL = "1s"
PREDICT = "/predict"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train(TRAINING, tmp_path_factory.mktemp("artifacts"), NAME, NAMESPACE)


@pytest.fixture(scope="module")
def server(model: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The inference server on loopback; yields its host:port."""
    # Installed beside this interpreter, which need not be on PATH.
    serve = Path(sys.executable).parent / "modelops-serve"
    assert serve.exists(), f"the inference server's console script is missing: {serve}"
    port = free_port()
    env = os.environ | {
        "MODELOPS_MODEL_NAME": NAME,
        "MODELOPS_MODEL_VERSION": model["version"],
        "MODELOPS_MODEL_SHA256": model["sha256"],
    }
    command: list[str | Path] = [
        serve,
        "--model-dir",
        model["artifactPath"],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = tmp_path_factory.mktemp("server") / "server.log"
    ready = f"http://127.0.0.1:{port}/v2/health/ready"
    with running_process(command, log, ready, env=env):
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: Path,
    server: str,
    model: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A real Prometheus whose only job is the model's, pointed at the local server."""
    job = build_scrape_job(NAMESPACE, NAME, SCRAPE_INTERVAL)
    config = with_scrape_job("", local_scrape_job(job, server, version=model["version"]))
    with running_prometheus(
        prometheus_binary, config, tmp_path_factory.mktemp("prometheus")
    ) as url:
        yield url


def _post(server: str, path: str, body: object) -> int:
    request = urllib.request.Request(
        f"http://{server}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _predict(server: str, row: list[float]) -> None:
    assert _post(server, PREDICT, {"instances": [row]}) == 200


def _reject(server: str) -> None:
    assert _post(server, PREDICT, {"instances": [["not", "numbers"]]}) // 100 == 4


def _value(prometheus: str, promql: str) -> float | None:
    """The single value of an instant query, None while nothing matches."""
    result = instant_query(prometheus, promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def _requests(code: str) -> str:
    return f'sum({metrics.REQUESTS}{{endpoint="{PREDICT}",code=~"{code}"}})'


def _wait_for_value(prometheus: str, promql: str, value: float) -> None:
    wait_until(
        lambda: _value(prometheus, promql) == value,
        timeout=30,
        what=f"Prometheus to scrape {promql} = {value:g}",
    )


def _wait_for_next_scrape(prometheus: str) -> None:
    last_scrape = f'timestamp(up{{job="{scrape_job_name(NAMESPACE, NAME)}"}})'
    scraped = _value(prometheus, last_scrape)
    wait_until(lambda: _value(prometheus, last_scrape) != scraped, timeout=30, what="a scrape")


@pytest.fixture(scope="module")
def traffic(server: str, prometheus: str) -> None:
    """Predictions and rejected requests, sent once a scrape has seen the first of each (so
    the counters' growth is measured between two scrapes), and scraped again afterwards."""
    for row in ROWS:
        _predict(server, row)
    _reject(server)
    _wait_for_value(prometheus, _requests("200"), len(ROWS))
    _wait_for_value(prometheus, _requests("4.."), 1)

    for index in range(PREDICTIONS):
        _predict(server, ROWS[index % len(ROWS)])
    for _ in range(BAD_REQUESTS):
        _reject(server)
    _wait_for_value(prometheus, _requests("200"), len(ROWS) + PREDICTIONS)
    _wait_for_value(prometheus, _requests("4.."), 1 + BAD_REQUESTS)
    # One more scrape, so that a count still growing would show.
    _wait_for_next_scrape(prometheus)


@pytest.mark.usefixtures("traffic")
def test_the_target_is_up_with_the_models_labels(prometheus: str, model: dict[str, Any]) -> None:
    (target,) = instant_query(prometheus, f'up{{job="{scrape_job_name(NAMESPACE, NAME)}"}}')

    assert target["value"][1] == "1"
    assert target["metric"]["namespace"] == NAMESPACE
    assert target["metric"]["model"] == NAME
    assert target["metric"]["version"] == model["version"]


@pytest.mark.usefixtures("traffic")
def test_the_request_counters_grew_by_exactly_the_requests_sent(prometheus: str) -> None:
    assert _value(prometheus, _requests("200")) == len(ROWS) + PREDICTIONS
    assert _value(prometheus, _requests("4..")) == 1 + BAD_REQUESTS


@pytest.mark.usefixtures("traffic")
def test_the_served_model_is_the_trained_one(prometheus: str, model: dict[str, Any]) -> None:
    (info,) = instant_query(
        prometheus,
        f'max by (version, sha256) ({metrics.MODEL_INFO}{{namespace="{NAMESPACE}",model="{NAME}"}})',
    )

    assert info["metric"] == {"version": model["version"], "sha256": model["sha256"]}


@pytest.mark.usefixtures("traffic")
def test_every_dashboard_query_has_data(prometheus: str) -> None:
    queries = dashboard_queries(build_dashboard(NAMESPACE, NAME)) + dashboard_queries(
        build_fleet_dashboard()
    )

    assert [query for query in queries if not instant_query(prometheus, concrete(query))] == []
