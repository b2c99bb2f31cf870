"""NetworkPolicies are enforced on the kind cluster (kube-router's policy controller,
deploy/addons/network-policy), from another node as from the same one: a policy admits the
namespace and port it names and refuses the rest; the policy the operator writes for a model
lets its pods answer on the server's ports alone and reach all but the link-local range (where
clouds serve a node's credentials)."""

from __future__ import annotations

import json
import subprocess
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from in_cluster import Client, create_pod, get_json, pod_phase, start_client
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until
from modelops_operator import builders
from modelops_operator.settings import Settings

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

# An answer of "ok" at each host:port of its arguments.
SERVE = """
    import http.server, sys, threading
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")
    for address in sys.argv[1:]:
        host, port = address.rsplit(":", 1)
        server = http.server.ThreadingHTTPServer((host, int(port)), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()
"""
# Where a cloud's metadata service answers; here a listener on the first worker, as one would.
LINK_LOCAL = "169.254.169.254"


@dataclass(frozen=True)
class Network:
    server_namespace: str
    client_namespace: str
    other_namespace: str
    server_node: str
    other_node: str
    server_ip: str

    def url(self, port: int) -> str:
        return f"http://{self.server_ip}:{port}/"


def serve(
    cluster: KindCluster,
    namespace: str,
    node: str,
    *addresses: str,
    host_network: bool = False,
    labels: Mapping[str, str] | None = None,
) -> str:
    """A pod on `node` answering at `addresses` (host:port); its IP."""
    name = f"serve-{uuid.uuid4().hex[:6]}"
    command = ["python", "-c", textwrap.dedent(SERVE), *addresses]
    create_pod(cluster, namespace, name, command, node, host_network=host_network, labels=labels)
    wait_until(lambda: pod_phase(cluster, namespace, name) == "Running", what=f"pod {name}")
    return str(get_json(cluster, "-n", namespace, "pod", name)["status"]["podIP"])


@pytest.fixture(scope="module")
def network(cluster: KindCluster) -> Iterator[Network]:
    suffix = uuid.uuid4().hex[:6]
    namespaces = [f"np-{role}-{suffix}" for role in ("server", "client", "other")]
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
    server_node, other_node = cluster.workers()[:2]
    address = ["docker", "exec", server_node, "ip", "address"]
    subprocess.run([*address, "add", f"{LINK_LOCAL}/32", "dev", "lo"], check=True, timeout=60)
    try:
        serve(cluster, namespaces[0], server_node, f"{LINK_LOCAL}:8080", host_network=True)
        server_ip = serve(cluster, namespaces[0], server_node, ":8080", ":9090")
        server_namespace, client_namespace, other_namespace = namespaces
        yield Network(
            server_namespace, client_namespace, other_namespace, server_node, other_node, server_ip
        )
    finally:
        subprocess.run([*address, "del", f"{LINK_LOCAL}/32", "dev", "lo"], timeout=60)
        for namespace in namespaces:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def client(cluster: KindCluster, network: Network) -> Callable[..., Client]:
    """The running client pod of a namespace on a node with labels, started on first use."""
    started: dict[tuple[str, str, tuple[tuple[str, str], ...]], Client] = {}

    def running(namespace: str, node: str, labels: Mapping[str, str] | None = None) -> Client:
        key = (namespace, node, tuple(sorted((labels or {}).items())))
        if key not in started:
            started[key] = start_client(cluster, namespace, node, labels)
        return started[key]

    return running


@pytest.fixture(autouse=True)
def no_policy_left(cluster: KindCluster, network: Network) -> Iterator[None]:
    """Each test starts where nothing is refused."""
    yield
    for namespace in (network.server_namespace, network.client_namespace, network.other_namespace):
        cluster.kubectl("-n", namespace, "delete", "networkpolicy", "--all")


def apply(cluster: KindCluster, namespace: str, policy: dict[str, Any]) -> None:
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"test-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": policy,
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def test_a_policy_admits_the_namespace_and_port_it_names_from_either_node(
    cluster: KindCluster, network: Network, client: Callable[..., Client]
) -> None:
    urls = [network.url(8080), network.url(9090)]
    for node in (network.server_node, network.other_node):
        assert client(network.client_namespace, node).answers(urls) == dict.fromkeys(urls, True)

    apply(
        cluster,
        network.server_namespace,
        {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": network.client_namespace
                                }
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    admitted = {urls[0]: True, urls[1]: False}
    for node in (network.other_node, network.server_node):

        def in_force(node: str = node) -> bool:
            return client(network.client_namespace, node).answers(urls) == admitted

        wait_until(in_force, timeout=60, what=f"the policy in force for a client on {node}")
    refused = dict.fromkeys(urls, False)
    assert client(network.other_namespace, network.other_node).answers(urls) == refused


def test_a_models_pods_answer_on_its_ports_alone_and_reach_all_but_link_local(
    cluster: KindCluster, network: Network, client: Callable[..., Client]
) -> None:
    """The NetworkPolicy the operator writes for each model, as it writes it."""
    namespace, node = network.other_namespace, network.server_node
    model_pod = builders.labels("fenced", "server")
    # The listener is on the server's node: a client there reaches it through its node.
    metadata = f"http://{LINK_LOCAL}:8080/"
    reached = [metadata, network.url(8080)]
    model_ip = serve(cluster, namespace, network.other_node, ":8080", ":9090", labels=model_pod)
    served = [f"http://{model_ip}:8080/", f"http://{model_ip}:9090/"]
    # Before the policy, both are open.
    wait_until(
        lambda: client(namespace, node, model_pod).answers(reached) == dict.fromkeys(reached, True),
        timeout=30,
        what="the model's pod to reach both addresses before its policy",
    )
    assert client(network.client_namespace, node).answers(served) == dict.fromkeys(served, True)

    policy = builders.build_network_policy("fenced", namespace, Settings())
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(policy))
    wait_until(
        lambda: (
            client(namespace, node, model_pod).answers(reached)
            == {metadata: False, network.url(8080): True}
        ),
        timeout=60,
        what="the model's policy in force",
    )
    assert client(network.client_namespace, node).answers(served) == {
        served[0]: True,
        served[1]: False,
    }
    # The namespace's other pods are not the model's.
    assert client(namespace, node).answers(reached) == dict.fromkeys(reached, True)
