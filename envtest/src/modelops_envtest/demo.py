"""`make demo`: the samples from git to a working REST endpoint.

With Docker and kind usable it runs `deploy/kind/demo.sh` (a real cluster). Without them (no
image registry, so no kind node image) it runs the local mode: the real control plane from the
test harness, the real operator, the samples applied with kubectl, and the pods' work done by
the real trainer and server as local processes (modelops_envtest.local_kubelet).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import FrameType

from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.local_kubelet import LocalKubelet, wait_for_port
from modelops_envtest.operator import OperatorProcess, install_prerequisites

ROOT = Path(__file__).resolve().parents[3]
KIND_DEMO = ROOT / "deploy" / "kind" / "demo.sh"
MONITORING_NAMESPACE = "modelops-system"
READY_TIMEOUT = "600s"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def kind_usable() -> bool:
    if shutil.which("kind") is None or shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _post(url: str, body: object) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def local_mode(keep_running: bool) -> int:
    print("mode: local — no usable Docker/kind here, so: a real kube-apiserver, etcd and")
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
                print("$ kubectl apply -f deploy/samples/", flush=True)
                print(plane.kubectl("apply", "-f", str(ROOT / "deploy" / "samples")).stdout, end="")
                print("$ kubectl wait --for=condition=Ready modeldeployments --all", flush=True)
                waited = plane.kubectl(
                    "wait",
                    "--for=condition=Ready",
                    "mdep",
                    "--all",
                    f"--timeout={READY_TIMEOUT}",
                    check=False,
                )
                print(waited.stdout + waited.stderr, end="")
                print("$ kubectl get modeldeployments")
                print(plane.kubectl("get", "modeldeployments").stdout, flush=True)
                if waited.returncode != 0:
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
        "--exit", action="store_true", help="stop once the endpoint answered (for tests and CI)"
    )
    parser.add_argument(
        "--mode", choices=["auto", "kind", "local"], default="auto", help="default: kind if usable"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if args.mode == "kind" or (args.mode == "auto" and kind_usable()):
        print("mode: kind — a real cluster with Docker and kind", flush=True)
        return subprocess.run(["bash", str(KIND_DEMO)], env=os.environ).returncode
    try:
        return local_mode(keep_running=not args.exit)
    except KeyboardInterrupt:
        return 0
