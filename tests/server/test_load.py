"""`modelops-load`: rows made from a model card, and the command against a real server on
loopback. The command runs as a subprocess only: Locust monkey-patches the standard library
with gevent on import, which must not happen to the test process."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Artifact, Process
from modelops_envtest.waiting import wait_until
from modelops_server.load import CardError, Column, make_rows, parse_card
from modelops_server.metrics import REQUESTS
from prometheus_client.parser import text_string_to_metric_families

LOAD = str(Path(sys.executable).parent / "modelops-load")
# The bounds of one command: it runs seconds, and must stop by itself well within this.
COMMAND_TIMEOUT = 120

CARD = {
    "name": "shop",
    "version": "v1",
    "features": [
        {"name": "price", "type": "numeric", "min": 2.5, "max": 3.0},
        {"name": "colour", "type": "categorical", "categories": ["blue", "red"]},
        {"name": "weight", "type": "numeric"},
    ],
}


def load(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOAD, *arguments], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def served(url: str) -> int:
    """How many /predict requests the server answered with 200, by its own metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == REQUESTS and sample.labels == {"endpoint": "/predict", "code": "200"}
        )
    )


@pytest.fixture
def running(serve_process: Callable[[Artifact], Process], iris_forest: Artifact) -> str:
    return serve_process(iris_forest).url


def test_rows_are_in_feature_order_within_the_card_s_ranges_and_categories() -> None:
    card = parse_card(CARD)
    assert card.unbounded == ("weight",)
    rows = make_rows(card.columns, 500, random.Random(1))
    assert len(rows) == 500
    assert all(2.5 <= price <= 3.0 for price, _, _ in rows)
    assert {colour for _, colour, _ in rows} == {"blue", "red"}
    # No range recorded (a model trained elsewhere): 0..1.
    assert all(0.0 <= weight <= 1.0 for _, _, weight in rows)
    assert all(type(price) is float and type(weight) is float for price, _, weight in rows)
    assert card.columns[0] == Column("price", 2.5, 3.0)


@pytest.mark.parametrize(
    ("card", "problem"),
    [
        ([], "not a JSON object"),
        ({"features": []}, 'no "features" list'),
        ({"features": [{"name": "x", "type": "text"}]}, "type 'text'"),
        ({"features": [{"name": "x", "type": "categorical"}]}, "lists no categories"),
        ({"features": [{"name": "x", "type": "numeric", "min": 2, "max": 1}]}, "no valid range"),
    ],
)
def test_a_card_load_cannot_be_made_from_says_why(card: Any, problem: str) -> None:
    with pytest.raises(CardError, match=problem):
        parse_card(card)


def test_the_module_does_not_import_locust() -> None:
    """The server's package holds the command: importing it must not monkey-patch anything."""
    code = (
        "import sys, modelops_server.load; print(sorted({'locust', 'gevent'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_healthy_server_answers_every_request_until_sigterm(
    running: str, iris_forest: Artifact
) -> None:
    before = served(running)
    # As in a pod: a long --duration, stopped by SIGTERM once the server has seen requests.
    process = subprocess.Popen(
        [LOAD, running, "--users", "2", "--duration", "600", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: served(running) > before + 50, timeout=60, what="load to arrive")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["failures"] == 0
    assert report["errors"] == []
    assert report["error_rate"] == 0
    assert report["versions"] == {iris_forest.version: report["requests"]}
    # The server counted each of them; at most one per user more, cut off in flight.
    assert report["requests"] <= served(running) - before <= report["requests"] + 2
    assert report["rps"] > 0
    assert 0 < report["p50_ms"] <= report["p90_ms"] <= report["p99_ms"] <= report["max_ms"]

    # The human-readable table, from a new connection for every request.
    table = load(running, "--duration", "1", "--no-keep-alive")
    assert table.returncode == 0, table.stderr
    assert "requests" in table.stdout and "p99" in table.stdout
    assert iris_forest.version in table.stdout


def test_a_target_rate_is_not_exceeded(running: str, iris_forest: Artifact) -> None:
    result = load(running, "--rate", "20", "--duration", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # One user per 10 req/s; a back-to-back user alone sends hundreds a second here.
    assert report["users"] == 2
    assert 0 < report["requests"] <= 20 * 3 * 1.5 + 5
    assert report["versions"] == {iris_forest.version: report["requests"]}


def test_failures_above_the_threshold_exit_1_and_a_url_without_a_card_exits_2(
    running: str,
) -> None:
    # Batches past the server's limit (MODELOPS_MAX_BATCH_ROWS, 10,000): every one refused.
    too_large = ("--batch-size", "10001", "--users", "1", "--duration", "1", "--json")
    result = load(running, *too_large)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] > 0
    assert report["failures"] == report["requests"]
    assert report["versions"] == {}
    [error] = report["errors"]
    assert error["message"].startswith("HTTP 413: the batch has 10001 rows")
    assert error["count"] == report["requests"]
    assert "above --max-error-rate" in result.stderr

    assert load(running, *too_large, "--max-error-rate", "1").returncode == 0

    # The server answers, but not with a card under this path.
    missing = load(f"{running}/v2", "--duration", "1")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"modelops-load: cannot use the model card: GET {running}/v2/card answered HTTP 404: "
        "is this a modelops inference server?"
    )
    assert "Traceback" not in missing.stderr
