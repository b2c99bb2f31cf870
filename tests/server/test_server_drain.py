"""The preStop drain: once GET /drain is called from the pod itself, every response closes its connection, so a
client's kept-alive connection to a pod on its way out ends cleanly after an answer instead of
at SIGTERM under a request. The rollout under keep-alive load on kind is the end-to-end proof
(tests/kind/test_kind_e2e.py)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from conftest import Artifact, Process, Server  # type: ignore[import-not-found]
from fastapi.testclient import TestClient
from modelops_server.cli import drain

ROW = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
HEADERS = {"Content-Type": "application/json"}
HOOK_SECONDS = 5


def from_the_pod(server: Server) -> TestClient:
    """A client of the server on the pod's own loopback, where its preStop hook runs."""
    return TestClient(server.client.app, client=("127.0.0.1", 50000))


def test_connections_close_once_draining(iris_server: Server) -> None:
    before = iris_server.predict({"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert "close" not in before.headers.get("connection", "")
    drained = from_the_pod(iris_server).get("/drain", params={"seconds": 0})
    assert drained.json() == {"drained": 0}
    after = iris_server.predict({"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert after.status_code == 200
    assert after.headers["connection"] == "close"


def test_only_the_pod_itself_may_drain_it(iris_server: Server) -> None:
    """Anyone who reaches the port could otherwise close every connection, again and again."""
    for host in ("10.244.1.7", "testclient", "fd00::7"):
        client = TestClient(iris_server.client.app, client=(host, 50000))
        answer = client.get("/drain", params={"seconds": 0})
        assert answer.status_code == 403
        assert "preStop hook" in answer.json()["error"]
    after = iris_server.predict({"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert "close" not in after.headers.get("connection", ""), "not draining"


def test_a_drain_longer_than_a_hook_could_mean_is_refused(iris_server: Server) -> None:
    answer = from_the_pod(iris_server).get("/drain", params={"seconds": 3600})
    assert answer.status_code == 422
    assert "seconds" in answer.json()["error"]
    assert "close" not in iris_server.client.get("/v2/health/live").headers.get("connection", "")


def test_a_kept_alive_connection_ends_after_its_next_answer_while_the_hook_waits(
    serve_process: Callable[[Artifact], Process], iris_forest: Artifact
) -> None:
    address = urlsplit(serve_process(iris_forest).url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request("POST", "/predict", ROW, HEADERS)
    first = connection.getresponse()
    first.read()
    assert not first.will_close, "kept alive before the drain"

    # The hook as the kubelet runs it, in the container: modelops-drain.
    arguments = ["--seconds", str(HOOK_SECONDS), "--port", str(address.port)]
    hook = threading.Thread(target=drain, args=(arguments,))
    hook.start()
    deadline = time.monotonic() + HOOK_SECONDS
    while True:
        connection.request("POST", "/predict", ROW, HEADERS)
        answer = connection.getresponse()
        assert answer.status == 200 and b"setosa" in answer.read(), "still answering"
        if answer.will_close:
            break
        assert time.monotonic() < deadline, "no answer closed its connection during the drain"
    assert hook.is_alive(), "it closed while the hook was still waiting"
    hook.join(timeout=HOOK_SECONDS + 10)
    connection.close()
