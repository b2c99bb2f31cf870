"""`make demo`: the samples from git to a working REST endpoint.

Kind mode, wherever a Docker engine answers or can be installed: a kind cluster from the node
image built here offline (modelops_envtest.kind), the project's images loaded into it, Argo CD
(built here too), a git server serving a copy of this repository, and only the root Application
applied: the platform and the models arrive from git. Then a curl through `kubectl
port-forward`. Local mode, the fallback where
Docker cannot run: the real control plane from the test harness, the real operator, the samples
applied with kubectl, and the pods' work done by the real trainer and server as local processes
(modelops_envtest.local_kubelet).

MODELOPS_DEMO=kind|local forces a mode (`--mode`); MODELOPS_DEMO_EXIT=1 (`--exit`) stops once
the endpoint answered, deleting the kind cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from modelops_envtest import argocd, kind
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.local_kubelet import LocalKubelet, wait_for_port
from modelops_envtest.operator import OperatorProcess, install_prerequisites

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "deploy" / "samples"
MONITORING_NAMESPACE = "modelops-system"
# Where argocd/apps/models.yaml puts the models.
MODELS_NAMESPACE = "ml"
READY_TIMEOUT = "600s"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
MODES = ("auto", "kind", "local")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _post(url: str, body: object) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def _apply_samples(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> bool:
    """Apply the samples and wait for them as a user would, showing each command and what it
    printed; whether every sample became Ready."""
    print("$ kubectl apply -f deploy/samples/", flush=True)
    print(kubectl("apply", "-f", str(SAMPLES)).stdout, end="")
    print("$ kubectl wait --for=condition=Ready modeldeployments --all", flush=True)
    waited = kubectl(
        "wait", "--for=condition=Ready", "mdep", "--all", f"--timeout={READY_TIMEOUT}", check=False
    )
    print(waited.stdout + waited.stderr, end="")
    print("$ kubectl get modeldeployments")
    print(kubectl("get", "modeldeployments").stdout, flush=True)
    return waited.returncode == 0


def kind_mode(keep_running: bool) -> int:
    print(
        "mode: kind — a real cluster: kind and its node image built here, offline; the models",
        flush=True,
    )
    print("      arrive from git through Argo CD", flush=True)
    started = time.monotonic()
    tools = kind.build(show_progress=True)
    argocd_tools = argocd.build(with_image=True, show_progress=True)
    print(
        f"node image {tools.node_image} and {argocd_tools.image} ready in {time.monotonic() - started:.0f}s",
        flush=True,
    )
    with kind.KindCluster(tools) as cluster:
        print(f"kind cluster {cluster.name} created in {cluster.create_seconds:.0f}s", flush=True)
        cluster.load(*kind.platform_images(tools))
        cluster.kubectl("apply", "--server-side", "-k", str(kind.METRICS_SERVER_ADDON))
        argocd.install_in_cluster(cluster, argocd_tools)
        print("Argo CD installed (argocd/install: controller, repo server, Redis)", flush=True)
        with argocd.GitServer(cluster.host_address()) as git:
            print(f"git server: {git.url}, a copy of this repository pointed at itself", flush=True)
            if not _sync_root_app(cluster.kubectl, git):
                print(
                    cluster.kubectl(
                        "-n", "argocd", "get", "applications", "-o", "yaml", check=False
                    ).stdout,
                    file=sys.stderr,
                )
                return 1
            with cluster.port_forward(MODELS_NAMESPACE, "service/iris", 8080) as port:
                print(
                    f"$ kubectl -n {MODELS_NAMESPACE} port-forward --address 127.0.0.1 service/iris {port}:8080 &"
                )
                _show_requests(port)
                print(f"ready in {time.monotonic() - started:.0f}s", flush=True)
                if keep_running:
                    cluster.keep = True
                    print(f"export KUBECONFIG={cluster.kubeconfig}   # to look around")
                    print(f"cd {git.work}   # commit and `git push` here: Argo CD syncs it")
                    print(f"{tools.kind} delete cluster --name {cluster.name}   # when done")
                    print(
                        "Ctrl-C stops the port-forward and the git server, and keeps the cluster",
                        flush=True,
                    )
                    with contextlib.suppress(KeyboardInterrupt):
                        while True:
                            time.sleep(3600)
    return 0


def _sync_root_app(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], git: argocd.GitServer
) -> bool:
    """Apply the root Application as docs/gitops.md has a user do, and wait for it as a user
    would; whether every Application synced and became healthy, with every model Ready."""
    print("$ kubectl apply -f argocd/root.yaml", flush=True)
    print(kubectl("apply", "-f", str(git.work / "argocd" / "root.yaml")).stdout, end="")
    # Synced first: before its first sync an Application can read Healthy with nothing applied.
    for field, value in (("sync", "Synced"), ("health", "Healthy")):
        condition = f"jsonpath={{.status.{field}.status}}={value}"
        print(
            f"$ kubectl -n argocd wait --for='{condition}' application/modelops-root "
            f"--timeout={READY_TIMEOUT}",
            flush=True,
        )
        waited = kubectl(
            "-n", "argocd", "wait", f"--for={condition}", "application/modelops-root",
            f"--timeout={READY_TIMEOUT}", check=False,
        )  # fmt: skip
        print(waited.stdout + waited.stderr, end="", flush=True)
        if waited.returncode != 0:
            return False
    print("$ kubectl -n argocd get applications")
    print(kubectl("-n", "argocd", "get", "applications").stdout, end="")
    print(f"$ kubectl -n {MODELS_NAMESPACE} get modeldeployments")
    print(kubectl("-n", MODELS_NAMESPACE, "get", "modeldeployments").stdout, flush=True)
    return True


def local_mode(keep_running: bool) -> int:
    print("mode: local — the fallback where Docker cannot run: a real kube-apiserver, etcd and")
    print("      controller-manager on loopback, the real operator, and the training and serving")
    print("      pods run as local processes by a stand-in kubelet.", flush=True)
    started = time.monotonic()
    with ControlPlane() as plane:
        install_prerequisites(plane)
        plane.kubectl("create", "namespace", MONITORING_NAMESPACE)
        operator = OperatorProcess(plane).start()
        artifacts = Path(tempfile.mkdtemp(prefix="modelops-artifacts-"))
        try:
            with LocalKubelet(plane.api_client(), artifacts) as kubelet:
                if not _apply_samples(plane.kubectl):
                    print(f"operator log:\n{operator.log_tail()}", file=sys.stderr)
                    return 1
                port = wait_for_port(kubelet, "default", "iris")
                _show_requests(port)
                print(f"ready in {time.monotonic() - started:.0f}s")
                if keep_running:
                    print(
                        f"export KUBECONFIG={plane.kubeconfig}   # to look around; Ctrl-C stops it all"
                    )
                    while True:
                        time.sleep(3600)
        finally:
            operator.stop()
    return 0


def _show_requests(port: int) -> None:
    """Print working curl commands for both APIs, with the answers they get."""
    base = f"http://127.0.0.1:{port}"
    requests = [
        (f"{base}/predict", {"instances": [IRIS_ROW]}),
        (
            f"{base}/v2/models/iris/infer",
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}
                ]
            },
        ),
    ]
    for url, body in requests:
        print(f"$ curl -s -H 'Content-Type: application/json' -d '{json.dumps(body)}' {url}")
        print(_post(url, body), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelops_envtest demo", description=__doc__)
    parser.add_argument(
        "--exit",
        action="store_true",
        default=os.environ.get("MODELOPS_DEMO_EXIT", "") in ("1", "true", "yes"),
        help="stop once the endpoint answered (MODELOPS_DEMO_EXIT=1)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=os.environ.get("MODELOPS_DEMO") or "auto",
        help="MODELOPS_DEMO; auto: kind where Docker can run, else local",
    )
    args = parser.parse_args(argv)
    if args.mode not in MODES:
        parser.error(f"MODELOPS_DEMO={args.mode}: use one of {', '.join(MODES)}")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    why_not_kind = kind.docker_obtainable()
    if args.mode == "kind" and why_not_kind:
        print(f"MODELOPS_DEMO=kind, but kind mode cannot run here: {why_not_kind}", file=sys.stderr)
        return 2
    if args.mode == "kind" or (args.mode == "auto" and why_not_kind is None):
        return kind_mode(keep_running=not args.exit)
    try:
        return local_mode(keep_running=not args.exit)
    except KeyboardInterrupt:
        return 0
