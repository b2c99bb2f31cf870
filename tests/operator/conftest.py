"""The operator under test, run as a real process against the real control plane, and a
stand-in for the kubelet: pods never run here, so tests report their outcome through the API
the way a kubelet would, and the real Job, ReplicaSet and Deployment controllers do the rest."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from modelops_envtest.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
SAMPLES = ROOT / "deploy" / "samples"
MODEL_CRD = "crd/modeldeployments.modelops.dev"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRDS))
    for crd in ("modeldeployments.modelops.dev", "clusterkopfpeerings.kopf.dev"):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    control_plane.kubectl(
        "apply", "-f", str(ROOT / "deploy" / "base" / "operator" / "peering.yaml")
    )


class OperatorProcess:
    """`python -m modelops_operator`, as the operator's container runs it."""

    def __init__(self, control_plane: ControlPlane, **env: str) -> None:
        self.control_plane = control_plane
        self.health_port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="modelops-operator-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "MODELOPS_HEALTH_PORT": str(self.health_port),
            "MODELOPS_RESYNC_SECONDS": "5",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modelops_operator"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.healthy, timeout=60, what="the operator's /healthz")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, crds_installed: None) -> Iterator[OperatorProcess]:
    running = OperatorProcess(control_plane).start()
    yield running
    running.stop()


class Kubelet:
    """Plays the kubelet's part for pods the real controllers create."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)

    def pods(self, namespace: str, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def _terminate(self, pod: Any, exit_code: int, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        container = pod.spec.containers[0]
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "startTime": now,
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "message": message,
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                }
            ],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def _training_pod(self, namespace: str, job_name: str) -> Any:
        def running_pod() -> Any:
            pods = [
                pod
                for pod in self.pods(namespace, f"job-name={job_name}")
                if pod.status.phase not in ("Succeeded", "Failed")
            ]
            return pods[0] if pods else None

        return wait_until(running_pod, what=f"a pod of Job {job_name}")

    def finish_training(self, namespace: str, job_name: str, summary: dict[str, Any]) -> None:
        self._terminate(self._training_pod(namespace, job_name), 0, json.dumps(summary))

    def fail_training(self, namespace: str, job_name: str, message: str) -> None:
        self._terminate(self._training_pod(namespace, job_name), 1, message)

    def make_ready(self, namespace: str, model: str) -> int:
        """Mark every serving pod of the model Running and Ready; returns how many it marked."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        marked = 0
        selector = f"modelops.dev/model={model},app.kubernetes.io/component=server"
        for pod in self.pods(namespace, selector):
            if pod.status.phase == "Running" or pod.metadata.deletion_timestamp:
                continue
            container = pod.spec.containers[0]
            status = {
                "phase": "Running",
                "startTime": now,
                "conditions": [
                    {"type": kind, "status": "True", "lastTransitionTime": now}
                    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                ],
            }
            self.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": status})
            marked += 1
        return marked


@pytest.fixture(scope="session")
def kubelet(api_client: kubernetes.client.ApiClient) -> Kubelet:
    return Kubelet(api_client)


class Models:
    """ModelDeployments in one namespace, driven with kubectl as a user would."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self.cp = control_plane
        self.namespace = namespace

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", self.namespace, *args, stdin=stdin, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", "mdep", name, "-o", "json").stdout)
        return found

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == kind), {})

    def wait_for_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(
            lambda: (status := self.status(name)).get("phase") == phase and status,
            timeout=timeout,
            what=f"{name} to reach {phase} (now {self.status(name).get('phase')}: {self.status(name).get('message')})",
        )

    def training_job(self, name: str) -> str:
        """The training Job for the resource's current generation."""

        def current_job() -> str | None:
            body = self.get(name)
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"]["generation"]:
                return None
            job: str | None = status.get("training", {}).get("jobName")
            return job

        return str(wait_until(current_job, what=f"{name}'s training Job"))

    def jobs(self, name: str) -> list[str]:
        out = self.kubectl("get", "jobs", "-l", f"modelops.dev/model={name}", "-o", "name").stdout
        return out.split()


@pytest.fixture
def models(control_plane: ControlPlane, namespace: str, operator: OperatorProcess) -> Models:
    return Models(control_plane, namespace)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return loaded


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The real trainer's summary for a training spec (trained once per spec and session)."""
    from modelops_trainer import train

    root = tmp_path_factory.mktemp("artifacts")
    cache: dict[str, dict[str, Any]] = {}

    def run(training: dict[str, Any], name: str) -> dict[str, Any]:
        key = json.dumps([training, name], sort_keys=True)
        if key not in cache:
            cache[key] = train(training, root, name=name, namespace="default")
        return cache[key]

    return run
