"""A real Kubernetes node: a kind cluster from the node image the project builds offline.

`images/kind/build.sh` builds (once, cached) the kind CLI, the node image and the local images
the kind overlay runs; `KindCluster` creates a cluster with a unique name from them, loads
images into it and always deletes it. Containers and clusters it did not create are left alone.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelops_envtest.controlplane import free_port
from modelops_envtest.waiting import wait_until

REPOSITORY = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPOSITORY / "images" / "kind" / "build.sh"
OBJECT_STORAGE_SCRIPT = REPOSITORY / "images" / "object-storage" / "build.sh"
MLFLOW_SCRIPT = REPOSITORY / "images" / "mlflow" / "build.sh"
METRICS_SERVER_SCRIPT = REPOSITORY / "images" / "metrics-server" / "build.sh"
NETWORK_POLICY_SCRIPT = REPOSITORY / "images" / "network-policy" / "build.sh"
METRICS_SERVER_ADDON = REPOSITORY / "deploy" / "addons" / "kind-metrics-server"
NETWORK_POLICY_ADDON = REPOSITORY / "deploy" / "addons" / "network-policy"
CLUSTER_CONFIG = REPOSITORY / "deploy" / "kind" / "cluster.yaml"
# The node image's pod network configuration, which takes one /24 of the pod subnet.
POD_NETWORK = REPOSITORY / "images" / "kind" / "10-ptp.conflist"
POD_NETWORK_PATH = "/etc/cni/net.d/10-ptp.conflist"
IMAGES_SCRIPT = REPOSITORY / "images" / "build.sh"
IMAGE_VERSION = os.environ.get("MODELOPS_IMAGE_VERSION", "0.1.0")
MODELOPS_IMAGES = tuple(
    f"modelops/{component}:{IMAGE_VERSION}"
    for component in ("operator", "trainer", "inference-server", "load")
)
SERVER_IMAGE, LOAD_IMAGE = MODELOPS_IMAGES[2:]
CREATE_WAIT = "5m"


class KindUnavailable(RuntimeError):
    """No Docker engine can be had on this machine (and why)."""


@dataclass(frozen=True)
class KindTools:
    """What images/kind/build.sh built: the kind CLI, kubectl of the node's version, and the
    image tags."""

    kind: Path
    kubectl: Path
    node_image: str
    prometheus_image: str
    metrics_server_image: str
    network_policy_image: str


def docker_obtainable() -> str | None:
    """None when a Docker engine answers or can be installed and started here, else why not."""
    if shutil.which("docker") and _succeeds(["docker", "info"]):
        return None
    if shutil.which("dockerd") or shutil.which("apt-get"):
        return None if os.geteuid() == 0 or shutil.which("sudo") else "no root to start dockerd"
    return "no Docker engine answers and none can be installed (no dockerd, no apt-get)"


def build(show_progress: bool = False) -> KindTools:
    """Build (or find cached) the project's images and everything the cluster needs; raises
    KindUnavailable without Docker. `show_progress` lets the build's log through to stderr."""
    why_not = docker_obtainable()
    if why_not:
        raise KindUnavailable(why_not)
    run_build(IMAGES_SCRIPT, show_progress=show_progress)
    built = run_build(BUILD_SCRIPT, show_progress=show_progress)
    metrics_server = run_build(METRICS_SERVER_SCRIPT, show_progress=show_progress)
    network_policy = run_build(NETWORK_POLICY_SCRIPT, show_progress=show_progress)
    return KindTools(
        kind=Path(built["KIND"]),
        kubectl=Path(built["KUBECTL"]),
        node_image=built["NODE_IMAGE"],
        prometheus_image=built["PROMETHEUS_IMAGE"],
        metrics_server_image=metrics_server["METRICS_SERVER_IMAGE"],
        network_policy_image=network_policy["NETWORK_POLICY_IMAGE"],
    )


def object_storage_image() -> str:
    """The S3-compatible server's image (deploy/samples/object-storage), built when missing."""
    return run_build(OBJECT_STORAGE_SCRIPT)["OBJECT_STORAGE_IMAGE"]


def mlflow_image() -> str:
    """The MLflow tracking server's image (deploy/samples/mlflow), built when missing."""
    return run_build(MLFLOW_SCRIPT)["MLFLOW_IMAGE"]


def platform_images(tools: KindTools) -> tuple[str, ...]:
    """The images the kind overlay and the operator's children run, all built here."""
    return (*MODELOPS_IMAGES, tools.prometheus_image, tools.metrics_server_image)


def run_build(script: Path, *args: str, show_progress: bool = False) -> dict[str, str]:
    """Run one of images/'s build scripts; the KEY=VALUE lines it printed on stdout."""
    done = subprocess.run(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} failed:\n{(done.stderr or '')[-4000:]}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def _run(
    command: list[str], check: bool, stdin: str | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run with output captured as text; failing loudly, with that output, when `check`."""
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and done.returncode != 0:
        name = Path(command[0]).name
        raise RuntimeError(f"{name} {' '.join(command[1:])} failed:\n{done.stdout}{done.stderr}")
    return done


def _succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def pod_subnet(config: dict[str, object], index: int) -> str:
    """The /24 of the cluster's pod subnet that node `index` (in the configuration's order)
    gives its pods."""
    networking = config["networking"]
    assert isinstance(networking, dict)
    subnets = ipaddress.ip_network(networking["podSubnet"]).subnets(new_prefix=24)
    return str(next(itertools.islice(subnets, index, None)))


def _node_index(node: str) -> int:
    """kind names nodes <cluster>-control-plane, <cluster>-worker, <cluster>-worker2, ..."""
    if node.endswith("-control-plane"):
        return 0
    suffix = node.rsplit("-worker", 1)[1]
    return int(suffix or "1")


def _node_address(node: str) -> str:
    return _run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.Networks.kind.IPAddress}}", node],
        check=True,
    ).stdout.strip()


class KindCluster:
    """`with KindCluster(tools) as cluster:` a cluster of deploy/kind/cluster.yaml's nodes named
    modelops-<random>, deleted on leaving the block unless `keep` was set."""

    def __init__(
        self, tools: KindTools, name: str | None = None, workers: int | None = None
    ) -> None:
        """`workers`: that many instead of the configuration's (0: one node, which runs pods)."""
        self.tools = tools
        self.config = yaml.safe_load(CLUSTER_CONFIG.read_text())
        if workers is not None:
            self.config["nodes"] = [{"role": "control-plane"}] + [{"role": "worker"}] * workers
        self.keep = False
        self.name = name or f"modelops-{uuid.uuid4().hex[:8]}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        self.create_seconds = 0.0

    def __enter__(self) -> KindCluster:
        started = time.monotonic()
        try:
            self._kind(
                "create",
                "cluster",
                "--image",
                self.tools.node_image,
                "--config",
                str(self._config()),
                "--wait",
                CREATE_WAIT,
                "--kubeconfig",
                str(self.kubeconfig),
            )
            self._route_pod_subnets()
        except BaseException:
            self.delete()
            raise
        self.create_seconds = time.monotonic() - started
        return self

    def _config(self) -> Path:
        """deploy/kind/cluster.yaml with each node's own pod network configuration mounted over
        the image's: the node's /24 of the pod subnet (kindnetd's job, whose image would have to
        be pulled)."""
        config = copy.deepcopy(self.config)
        for index, node in enumerate(config["nodes"]):
            network = json.loads(POD_NETWORK.read_text())
            network["plugins"][0]["ipam"]["ranges"] = [[{"subnet": pod_subnet(config, index)}]]
            path = self.workdir / f"pod-network-{index}.conflist"
            path.write_text(json.dumps(network, indent=2))
            node.setdefault("extraMounts", []).append(
                {"hostPath": str(path), "containerPath": POD_NETWORK_PATH, "readOnly": True}
            )
        path = self.workdir / "cluster.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def nodes(self) -> list[str]:
        """The node containers, in the configuration's order (control plane, then workers)."""
        names = self._kind("get", "nodes").stdout.split()
        return sorted(names, key=_node_index)

    def workers(self) -> list[str]:
        """The nodes that run pods: the workers, or the control plane of a one-node cluster."""
        nodes = self.nodes()
        return [node for node in nodes if _node_index(node) > 0] or nodes

    def _route_pod_subnets(self) -> None:
        """Every node routes each other node's /24 of the pod subnet to that node, and leaves a
        pod's address as it is on the way (ptp's ipMasq would put the node's in its place, and
        a NetworkPolicy that admits some pods would then refuse them from another node)."""
        nodes = self.nodes()
        addresses = {node: _node_address(node) for node in nodes}
        pods = str(self.config["networking"]["podSubnet"])
        for node in nodes:
            unmasqueraded = ["POSTROUTING", "-s", pods, "-d", pods, "-j", "RETURN"]
            nat = ["docker", "exec", node, "iptables", "-t", "nat"]
            if _run([*nat, "-C", *unmasqueraded], check=False).returncode != 0:
                _run([*nat, "-I", *unmasqueraded[:1], "1", *unmasqueraded[1:]], check=True)
            for other in nodes:
                if other != node:
                    subnet = pod_subnet(self.config, _node_index(other))
                    _run(
                        ["docker", "exec", node, "ip", "route", "replace", subnet,
                         "via", addresses[other]],
                        check=True,
                    )  # fmt: skip

    def restart_node(self, node: str, timeout: str = "300s") -> None:
        """`docker restart` of a node's container, as a machine reboots; once it is back, its
        routes to the other nodes' pods and theirs to its own (which live in the nodes' network
        namespaces, and follow its address should Docker give it another) are made again, and
        the node is Ready."""
        _run(["docker", "restart", node], check=True)
        self._route_pod_subnets()
        self.kubectl("wait", "--for=condition=Ready", f"node/{node}", f"--timeout={timeout}")

    def __exit__(self, *exc_info: object) -> None:
        if not self.keep:
            self.delete()

    def delete(self) -> None:
        self._kind("delete", "cluster", "--kubeconfig", str(self.kubeconfig), check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _kind(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([str(self.tools.kind), *args, "--name", self.name], check=check)

    def host_address(self) -> str:
        """This host's IPv4 address on the kind network: where pods reach a server on the host
        (their traffic is masqueraded as the node's)."""
        gateways = _run(
            [
                "docker", "network", "inspect", "kind",
                "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
            ],
            check=True,
        ).stdout.split()  # fmt: skip
        return next(address for address in gateways if "." in address)

    def load(self, *images: str) -> None:
        """Put local Docker images into the workers' containerd (no registry involved): only
        they run pods, the control plane being tainted as on any cluster with workers."""
        self._kind("load", "docker-image", "--nodes", ",".join(self.workers()), *images)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """kubectl of the node's own version against this cluster; output captured as text."""
        command = [str(self.tools.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        return _run(command, check=check, stdin=stdin, timeout=timeout)

    def install_platform(self, overlay: str = "kind", timeout: str = "300s") -> None:
        """The kind overlay (CRDs, operator, Prometheus) with the images it runs loaded first."""
        self.load(*platform_images(self.tools))
        # One apply, as a user's: the overlay holds no object of a CRD it creates.
        self.kubectl(
            "apply", "--server-side", "-k", str(REPOSITORY / "deploy" / "overlays" / overlay)
        )
        # The cluster's add-ons, beside the platform: what the models' autoscalers read, and
        # the NetworkPolicy enforcer (on every node, the control plane's too).
        self.kubectl("apply", "--server-side", "-k", str(METRICS_SERVER_ADDON))
        self._kind(
            "load", "docker-image", "--nodes", ",".join(self.nodes()),
            self.tools.network_policy_image,
        )  # fmt: skip
        self.kubectl("apply", "--server-side", "-k", str(NETWORK_POLICY_ADDON))
        self.wait_rolled_out("kube-system", "daemonset/kube-router", timeout)
        for deployment in ("modelops-operator", "prometheus"):
            self.wait_rolled_out("modelops-system", f"deployment/{deployment}", timeout)

    def wait_rolled_out(self, namespace: str, workload: str, timeout: str = "300s") -> None:
        """`kubectl rollout status`; if it times out, the error carries what its pods and the
        namespace's events say, as a run that fails on a busy machine cannot be looked at later."""
        waited = self.kubectl(
            "-n", namespace, "rollout", "status", workload, f"--timeout={timeout}", check=False
        )  # fmt: skip
        if waited.returncode == 0:
            return
        pods = self.kubectl("-n", namespace, "get", "pods", "-o", "wide", check=False)
        events = self.kubectl(
            "-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False
        )  # fmt: skip
        raise RuntimeError(
            f"{workload} in {namespace} did not roll out within {timeout}:\n"
            f"{waited.stdout}{waited.stderr}\n{pods.stdout}\n{events.stdout[-6000:]}"
        )

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[int]:
        """`kubectl port-forward` on 127.0.0.1 and a free port, which it yields once open."""
        local = free_port()
        log = self.workdir / f"port-forward-{local}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(self.tools.kubectl),
                    f"--kubeconfig={self.kubeconfig}",
                    "-n",
                    namespace,
                    "port-forward",
                    "--address",
                    "127.0.0.1",
                    target,
                    f"{local}:{port}",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: process.poll() is not None or b"Forwarding from" in log.read_bytes(),
                timeout=30,
                what=f"port-forward to {target}",
            )
            if process.poll() is not None:
                raise RuntimeError(f"port-forward to {target} exited: {log.read_text()}")
            yield local
        finally:
            process.terminate()
            process.wait(10)
