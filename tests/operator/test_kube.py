"""The operator's API requests against a server that never answers: each ends in its timeout,
and the operator's connections keep TCP alive."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import kubernetes
import pytest
import urllib3
from modelops_operator import handlers, kube


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers on them."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_a_request_the_apiserver_never_answers_ends_in_its_timeout(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT_SECONDS", (1.0, 1.0))
    configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{silent_server}")
    configuration.retries = 0
    client = kube.Kube(kubernetes.client.ApiClient(configuration))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        client.get("v1", "Pod", "ns", "nothing")
    assert time.monotonic() - started < 5


def test_the_operators_connections_keep_tcp_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cluster(client_configuration: kubernetes.client.Configuration) -> None:
        client_configuration.host = "https://127.0.0.1:6443"

    monkeypatch.setattr(kubernetes.config, "load_incluster_config", no_cluster)
    pool = handlers._api_client().rest_client.pool_manager
    options = dict(
        ((level, name), value) for level, name, value in pool.connection_pool_kw["socket_options"]
    )
    assert options[(socket.SOL_SOCKET, socket.SO_KEEPALIVE)] == 1
    assert options[(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)] == 30
