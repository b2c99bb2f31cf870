"""Acting inside the kind cluster as its users' workloads do: a pod that runs a Python script."""

from __future__ import annotations

import contextlib
import json
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops_envtest import kind
from modelops_envtest.waiting import wait_until

# The inference server's image has Python and nothing of the test's: a realistic client pod.
CLIENT_IMAGE = kind.SERVER_IMAGE


def run_python(
    cluster: kind.KindCluster,
    namespace: str,
    script: str,
    timeout: float = 300,
    node: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Run `script` with the server image's Python in a pod of the cluster (on `node` if
    named, with `labels`); its output."""
    name = f"client-{uuid.uuid4().hex[:8]}"
    command = ["python", "-c", textwrap.dedent(script)]
    create_pod(cluster, namespace, name, command, node, labels=labels)
    try:
        return wait_for_output(cluster, namespace, name, timeout)
    finally:
        cluster.kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)


def predict_script(url: str, rows: list[list[float]]) -> str:
    return f"""
        import json, urllib.request
        request = urllib.request.Request({url!r}, data=json.dumps({{"instances": {rows!r}}}).encode(),
                                         headers={{"Content-Type": "application/json"}})
        print(urllib.request.urlopen(request, timeout=10).read().decode())
    """


def create_pod(
    cluster: kind.KindCluster,
    namespace: str,
    name: str,
    command: list[str],
    node: str | None = None,
    image: str = CLIENT_IMAGE,
    host_network: bool = False,
    labels: Mapping[str, str] | None = None,
) -> None:
    """A pod of `image` (the server's) running `command` (its PID 1) once, on `node` if
    named, in the node's network namespace if `host_network`, with `labels`; restricted, as
    a namespace enforcing the restricted Pod Security Standard (Argo CD's) admits."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
        },
    }
    if node is not None:
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    if host_network:
        pod["spec"]["hostNetwork"] = True
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))


@contextlib.contextmanager
def load_generator(
    cluster: kind.KindCluster, namespace: str, url: str, flags: str, node: str | None = None
) -> Iterator[Callable[[], dict[str, Any]]]:
    """modelops-load against `url` from a pod of the load generator's image (on `node` if named),
    running until `stop()` sends it SIGTERM; `stop()` returns its JSON report (requests,
    failures, errors, versions, latencies). The pod goes on leaving the block."""
    name = f"load-{uuid.uuid4().hex[:6]}"
    create_pod(
        cluster, namespace, name, ["modelops-load", url, *flags.split(), "--json"], node,
        kind.LOAD_IMAGE,
    )  # fmt: skip

    def stop() -> dict[str, Any]:
        # The command is the pod's PID 1: it stops on SIGTERM and prints its report. Not
        # checked: a command that already exited (no card, say) shows why in its logs below.
        kill = "import os, signal; os.kill(1, signal.SIGTERM)"
        cluster.kubectl("-n", namespace, "exec", name, "--", "python", "-c", kill, check=False)
        # Its exit status is 1 on any failed request: wait_for_output then shows the report.
        logs = wait_for_output(cluster, namespace, name, timeout=60)
        return dict(json.loads([line for line in logs.splitlines() if line.startswith("{")][-1]))

    try:
        wait_until(
            lambda: pod_phase(cluster, namespace, name) == "Running",
            timeout=60,
            what="the load pod",
        )
        yield stop
    finally:
        cluster.kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)


@dataclass(frozen=True)
class Client:
    """A pod of the server's image that stays up, for scripts run in it one after another
    (`kubectl exec`). A NetworkPolicy enforcer learns of a new pod's address a moment after the
    pod starts (kube-router: under a second), so a check that a policy admits some pods asks a
    client that has been running, as real clients have, not one started for the question."""

    cluster: kind.KindCluster
    namespace: str
    name: str

    def run_python(self, script: str, timeout: float = 60) -> str:
        command = ["-n", self.namespace, "exec", self.name, "--", "python", "-c"]
        return self.cluster.kubectl(*command, textwrap.dedent(script), timeout=timeout).stdout

    def connections(self, addresses: list[str]) -> dict[str, str]:
        """For each host:port, what a TCP connection from the pod met: "open", or the error's
        name."""
        script = f"""
            import socket
            for address in {addresses!r}:
                host, port = address.rsplit(":", 1)
                try:
                    socket.create_connection((host, int(port)), timeout=3).close()
                    print(address, "open")
                except Exception as error:
                    print(address, type(error).__name__)
        """
        return dict(line.split(" ", 1) for line in self.run_python(script).splitlines())

    def answers(self, urls: list[str]) -> dict[str, bool]:
        """For each URL, whether the pod gets an answer of "ok"."""
        script = f"""
            import urllib.request
            for url in {urls!r}:
                try:
                    print(url, urllib.request.urlopen(url, timeout=3).read().decode())
                except Exception as error:
                    print(url, type(error).__name__)
        """
        lines = self.run_python(script).splitlines()
        return {url: said == "ok" for url, said in (line.split(" ", 1) for line in lines)}


def start_client(
    cluster: kind.KindCluster,
    namespace: str,
    node: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Client:
    """A running Client in `namespace` (on `node` if named, with `labels`); it goes with its
    namespace, or `kubectl delete`."""
    name = f"client-{uuid.uuid4().hex[:8]}"
    create_pod(cluster, namespace, name, ["sleep", "infinity"], node, labels=labels)
    wait_until(lambda: pod_phase(cluster, namespace, name) == "Running", what=f"pod {name}")
    client = Client(cluster, namespace, name)
    # A pod just Running may be unknown to the enforcer yet, which refuses its first connections:
    # the cluster's DNS, which every policy here lets a pod reach, answers once it is known.
    dns = get_json(cluster, "-n", "kube-system", "service", "kube-dns")["spec"]["clusterIP"]
    wait_until(
        lambda: client.connections([f"{dns}:53"]) == {f"{dns}:53": "open"},
        timeout=30,
        what=f"pod {name}'s first connection",
    )
    return client


def server_pods(cluster: kind.KindCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """The model's serving pods."""
    return list(
        get_json(
            cluster,
            "-n",
            namespace,
            "pods",
            "-l",
            f"modelops.dev/model={name},app.kubernetes.io/component=server",
        )["items"]
    )


def wait_for_output(cluster: kind.KindCluster, namespace: str, name: str, timeout: float) -> str:
    def finished() -> bool:
        phase = pod_phase(cluster, namespace, name)
        assert phase != "Failed", cluster.kubectl("-n", namespace, "logs", name, check=False).stdout
        return phase == "Succeeded"

    wait_until(finished, timeout=timeout, what=f"pod {name} to finish")
    return cluster.kubectl("-n", namespace, "logs", name).stdout


def pod_phase(cluster: kind.KindCluster, namespace: str, name: str) -> str:
    return cluster.kubectl(
        "-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}"
    ).stdout


def get_json(cluster: kind.KindCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def sample_namespace(cluster: kind.KindCluster, prefix: str, image: str, sample: Path) -> str:
    """A new namespace with a samples folder applied (`kubectl apply -k`), after loading the
    image of the server the folder runs beside its models."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.load(image)
    cluster.kubectl("-n", name, "apply", "-k", str(sample))
    return name
