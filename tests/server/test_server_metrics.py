"""/metrics: the agreed series, with the labels the dashboards select on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Artifact, Server
from modelops_operator.monitoring import metrics as dashboard_metrics
from modelops_server import metrics
from prometheus_client.parser import text_string_to_metric_families

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


def _samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], series: str, **labels: str
) -> float:
    return samples[(series, frozenset(labels.items()))]


def test_the_server_exports_what_the_dashboards_query(
    iris_server: Server, iris_forest: Artifact
) -> None:
    iris_server.predict({"instances": [SETOSA, SETOSA, VIRGINICA]})
    iris_server.predict({"instances": [SETOSA]})
    iris_server.predict({"instances": [[1.0]]})
    iris_server.infer(
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}]}
    )

    samples = _samples(iris_server)

    assert _value(samples, metrics.REQUESTS, endpoint="/predict", code="200") == 2
    assert _value(samples, metrics.REQUESTS, endpoint="/predict", code="400") == 1
    assert _value(samples, metrics.REQUESTS, endpoint="/v2/models/{name}/infer", code="200") == 1
    assert _value(samples, f"{metrics.REQUEST_DURATION}_count", endpoint="/predict") == 3
    assert (
        _value(samples, f"{metrics.REQUEST_DURATION}_bucket", endpoint="/predict", le="+Inf") == 3
    )
    assert _value(samples, f"{metrics.BATCH_SIZE}_count") == 3
    assert _value(samples, f"{metrics.BATCH_SIZE}_sum") == 5
    assert _value(samples, metrics.PREDICTIONS, **{"class": "setosa"}) == 4
    assert _value(samples, metrics.PREDICTIONS, **{"class": "virginica"}) == 1
    info = dict(
        name=iris_forest.name,
        version=iris_forest.version,
        sha256=iris_forest.metadata["sha256"],
        runtime="compiled",
    )
    assert _value(samples, metrics.MODEL_INFO, **info) == 1
    assert (
        _value(samples, metrics.MODEL_METRIC, metric="accuracy")
        == iris_forest.metadata["metrics"]["accuracy"]
    )


def test_unknown_paths_share_one_label(iris_server: Server) -> None:
    for path in ("/a", "/b", "/c"):
        iris_server.client.get(path)

    assert _value(_samples(iris_server), metrics.REQUESTS, endpoint="unmatched", code="404") == 3


def test_a_server_bug_on_an_inference_route_is_a_counted_500_with_a_json_error(
    iris_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered in front of FastAPI (app.InferenceRoutes), the inference routes keep its answers."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(iris_server.dataplane, "predict", broken)
    monkeypatch.setattr(iris_server.dataplane, "infer", broken)
    answers = [
        iris_server.predict({"instances": [SETOSA]}),
        iris_server.infer({"inputs": []}),
        iris_server.infer({"inputs": []}, path="/v2/models/iris/versions/v1/infer"),
    ]

    for answer in answers:
        assert answer.status_code == 500
        assert answer.json() == {"error": "internal error: RuntimeError"}
    samples = _samples(iris_server)
    for endpoint in ("/predict", "/v2/models/{name}/infer"):
        assert _value(samples, metrics.REQUESTS, endpoint=endpoint, code="500") == 1
    versioned = "/v2/models/{name}/versions/{version}/infer"
    assert _value(samples, metrics.REQUESTS, endpoint=versioned, code="500") == 1


def test_the_names_are_the_ones_the_operator_builds_dashboards_with() -> None:
    names = (
        "REQUESTS",
        "REQUEST_DURATION",
        "BATCH_SIZE",
        "BATCHED_REQUESTS",
        "PREDICTIONS",
        "MODEL_INFO",
        "MODEL_METRIC",
    )

    assert {n: getattr(metrics, n) for n in names} == {
        n: getattr(dashboard_metrics, n) for n in names
    }


def test_a_client_that_leaves_before_its_body_is_counted_as_499_and_not_answered(
    iris_server: Server,
) -> None:
    """No one is left to answer: not a server error (nginx's code for it)."""
    app = iris_server.client.app
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-length", b"100")],
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]

    assert sent == []
    assert _value(_samples(iris_server), metrics.REQUESTS, endpoint="/predict", code="499") == 1
