"""A model scikit-learn runs itself (not compiled) is predicted once for all the requests that
wait together (batching.py): each request is answered with its own rows' answers, as alone, and
a request the model refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import Artifact, Server
from modelops_server import metrics
from modelops_server.batching import Batches
from modelops_server.metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = 12
# Beyond float32: scikit-learn's trees refuse it, the server's own checks do not.
TOO_LARGE = 1e39


def _infer_body(rows: list[list[float]]) -> dict[str, Any]:
    data = [value for row in rows for value in row]
    return {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": data}]}


def _rows(request: int) -> list[list[float]]:
    """One to three rows, different for every request."""
    generator = np.random.default_rng(request)
    return (generator.uniform(0.1, 8.0, size=(1 + request % 3, 4)).round(1)).tolist()


def _post_all(server: Server, path: str, bodies: list[Any]) -> list[tuple[int, Any]]:
    """The requests all at once, on one event loop, in ASGI (the way uvicorn calls the app):
    each one's status and JSON answer."""
    app = server.client.app

    async def post(body: Any) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(raw)),
            ],
        }
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)  # type: ignore[operator]
        return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))

    async def post_all() -> list[tuple[int, Any]]:
        return await asyncio.gather(*(post(body) for body in bodies))

    return asyncio.run(post_all())


def _calls(server: Server) -> dict[str, float]:
    """The batched-requests histogram: its count (calls), sum (requests) and buckets."""
    scraped = server.client.get("/metrics").text
    family = next(
        f for f in text_string_to_metric_families(scraped) if f.name == metrics.BATCHED_REQUESTS
    )
    return {
        sample.name.removeprefix(metrics.BATCHED_REQUESTS) + sample.labels.get("le", ""): (
            sample.value
        )
        for sample in family.samples
    }


def test_requests_that_wait_together_are_predicted_in_one_call_and_answered_as_alone(
    serve: Callable[..., Server], iris_forest: Artifact
) -> None:
    server = serve(iris_forest, compile=False)
    path = f"/v2/models/{iris_forest.name}/infer"
    bodies = [_infer_body(_rows(request)) for request in range(REQUESTS)]
    alone = [server.client.post(path, json=body).json() for body in bodies]
    assert _calls(server)["_count"] == REQUESTS

    together = _post_all(server, path, bodies)

    assert [status for status, _ in together] == [200] * REQUESTS
    assert [answer for _, answer in together] == alone
    calls = _calls(server)
    assert calls["_sum"] == 2 * REQUESTS
    # All waited while none was predicted: one call took them all.
    assert calls["_count"] == REQUESTS + 1
    assert calls["_bucket16.0"] - calls["_bucket8.0"] == 1


def test_the_simple_api_is_batched_too(serve: Callable[..., Server], iris_forest: Artifact) -> None:
    server = serve(iris_forest, compile=False)
    bodies = [{"instances": _rows(request)} for request in range(REQUESTS)]
    alone = [server.predict(body).json() for body in bodies]

    together = _post_all(server, "/predict", bodies)

    assert [answer for _, answer in together] == alone
    assert _calls(server)["_count"] == REQUESTS + 1


# scikit-learn warns as it casts the value it then refuses.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_request_the_model_refuses_fails_alone_and_the_others_are_answered(
    serve: Callable[..., Server], iris_forest: Artifact
) -> None:
    server = serve(iris_forest, compile=False)
    path = f"/v2/models/{iris_forest.name}/infer"
    bodies = [_infer_body(_rows(request)) for request in range(REQUESTS)]
    bodies[5] = _infer_body([[5.1, TOO_LARGE, 1.4, 0.2]])
    alone = [server.client.post(path, json=body).json() for body in bodies]

    together = _post_all(server, path, bodies)

    assert [status for status, _ in together] == [200] * 5 + [400] + [200] * 6
    assert together[5][1] == alone[5]
    assert "the model rejected the input" in together[5][1]["error"]
    assert [answer for _, answer in together] == alone
    # The call of all twelve failed, and each was predicted again alone.
    assert _calls(server)["_count"] == REQUESTS + 1 + REQUESTS


def _counting_rows(server: Server, predicted: list[int]) -> Callable[[np.ndarray], Any]:
    """The served model's own prediction (scikit-learn's here), noting each call's rows."""
    loaded = server.dataplane.model.loaded
    assert loaded is not None

    def predict(matrix: np.ndarray) -> Any:
        predicted.append(len(matrix))
        return loaded.runtime.predictor.predict(matrix)

    return predict


def test_a_request_whose_client_left_is_not_predicted(
    serve: Callable[..., Server], iris_forest: Artifact
) -> None:
    predicted: list[int] = []
    predict = _counting_rows(serve(iris_forest, compile=False), predicted)

    async def three_then_one_leaves() -> list[Any]:
        batches = Batches(predict, threads=1, max_rows=100, metrics=Metrics())
        asks = [asyncio.create_task(batches.predict(np.full((rows, 4), 5.0))) for rows in (1, 2, 3)]
        await asyncio.sleep(0)  # all three wait; none is predicted yet
        asks[2].cancel()
        return await asyncio.gather(*asks, return_exceptions=True)

    first, second, third = asyncio.run(three_then_one_leaves())

    assert isinstance(third, asyncio.CancelledError)
    assert (len(first.outputs), len(second.outputs)) == (1, 2)
    assert predicted == [3]


def test_a_call_holds_at_most_the_largest_batch_a_request_may_send(
    serve: Callable[..., Server], iris_forest: Artifact
) -> None:
    predicted: list[int] = []
    predict = _counting_rows(serve(iris_forest, compile=False), predicted)

    async def five_requests() -> list[Any]:
        batches = Batches(predict, threads=1, max_rows=4, metrics=Metrics())
        return await asyncio.gather(
            *(batches.predict(np.full((rows, 4), 5.0)) for rows in (3, 1, 2, 2, 6))
        )

    answers = asyncio.run(five_requests())

    assert [len(answer.outputs) for answer in answers] == [3, 1, 2, 2, 6]
    assert predicted == [4, 4, 6]
