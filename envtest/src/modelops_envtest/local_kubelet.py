"""A kubelet that runs modelops' pods as local processes.

Where no container can run, this watches the pods the real controllers create for
ModelDeployments and runs what their containers would run — `modelops-train` for a training
pod, `modelops-serve` for a serving pod — with the pod's own arguments and environment, the
artifact volume mapped to a local directory. It reports the outcome through the API like a
kubelet: the trainer's termination message, a serving pod Ready once its readiness endpoint
answers. Everything else (Jobs, ReplicaSets, the operator) is the real thing.

Pods in the `stand_in_for` namespaces (the platform's, when its Deployments are applied by Argo
CD) are reported Ready without running anything: what they would run already runs beside the
control plane as a local process (the operator).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from modelops_envtest.controlplane import free_port
from modelops_envtest.kubelet import Kubelet

logger = logging.getLogger(__name__)

MANAGED_SELECTOR = "app.kubernetes.io/managed-by=modelops"
COMPONENT_LABEL = "app.kubernetes.io/component"
# The path the pods mount the artifact volume at (the artifact contract's default).
ARTIFACT_MOUNT_PATH = "/models"
# What each container's image runs, by container name.
PROGRAMS = {
    "trainer": "modelops-train",
    "server": "modelops-serve",
    "champion": "modelops-champion",
}
POLL_SECONDS = 0.5
READY_PATH = "/v2/health/ready"


def _program(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (run `uv sync`)")
    return found


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    pod: Any
    port: int | None = None
    termination_log: Path | None = None
    ready: bool = False


@dataclass
class LocalKubelet:
    api_client: kubernetes.client.ApiClient
    artifacts: Path
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="modelops-pods-")))
    stand_in_for: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.kubelet = Kubelet(self.api_client)
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalKubelet:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for running in self._running.values():
            if running.process.poll() is None:
                running.process.terminate()
        for running in self._running.values():
            try:
                running.process.wait(10)
            except subprocess.TimeoutExpired:
                running.process.kill()

    def __enter__(self) -> LocalKubelet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def server_port(self, namespace: str, model: str) -> int | None:
        """The local port of a ready serving pod of the model (what its Service would reach)."""
        for running in self._running.values():
            labels = running.pod.metadata.labels or {}
            if (
                running.ready
                and running.pod.metadata.namespace == namespace
                and labels.get("modelops.dev/model") == model
            ):
                return running.port
        return None

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception:
                logger.exception("local kubelet sync failed; retrying")
            self._stop.wait(POLL_SECONDS)

    def _sync(self) -> None:
        pods: list[Any] = self.kubelet.core.list_pod_for_all_namespaces(
            label_selector=MANAGED_SELECTOR
        ).items
        present = {pod.metadata.uid for pod in pods if not pod.metadata.deletion_timestamp}
        for uid in [uid for uid in self._running if uid not in present]:
            # The pod is gone (a rollout replaced it): so goes its process.
            self._running.pop(uid).process.terminate()
        for pod in pods:
            uid = pod.metadata.uid
            if uid not in present:
                continue
            if uid not in self._running and pod.status.phase in (None, "Pending"):
                self._running[uid] = self._launch(pod)
            elif uid in self._running:
                self._observe(self._running[uid])
        for namespace in self.stand_in_for:
            stood_in: list[Any] = self.kubelet.core.list_namespaced_pod(namespace).items
            for pod in stood_in:
                if not pod.metadata.deletion_timestamp and pod.status.phase in (None, "Pending"):
                    self.kubelet.mark_ready(pod)

    def _launch(self, pod: Any) -> _Running:
        container = pod.spec.containers[0]
        env = {**os.environ}
        env.update({item.name: self._local(_value(item, pod)) for item in container.env or []})
        args = [self._local(arg) for arg in container.args or []]
        port: int | None = None
        termination_log: Path | None = None
        if pod.metadata.labels.get(COMPONENT_LABEL) == "server":
            port = free_port()
            args += ["--host", "127.0.0.1", "--port", str(port)]
        else:
            termination_log = self.logs / f"{pod.metadata.name}.termination-log"
            env["MODELOPS_TERMINATION_LOG"] = str(termination_log)
        with (self.logs / f"{pod.metadata.name}.log").open("wb") as log:
            process = subprocess.Popen(
                [_program(PROGRAMS[container.name]), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        logger.info(
            "running pod %s/%s as pid %d", pod.metadata.namespace, pod.metadata.name, process.pid
        )
        return _Running(process, pod, port, termination_log)

    def _local(self, value: str) -> str:
        if value == ARTIFACT_MOUNT_PATH or value.startswith(ARTIFACT_MOUNT_PATH + "/"):
            return str(self.artifacts) + value[len(ARTIFACT_MOUNT_PATH) :]
        return value

    def _observe(self, running: _Running) -> None:
        if running.termination_log is not None:
            exit_code = running.process.poll()
            if exit_code is not None and running.pod.status.phase in (None, "Pending"):
                message = (
                    running.termination_log.read_text() if running.termination_log.exists() else ""
                )
                self.kubelet.terminate(running.pod, exit_code, message.strip())
                running.pod.status.phase = "Succeeded" if exit_code == 0 else "Failed"
        elif not running.ready and self._answers(running.port):
            self.kubelet.mark_ready(running.pod)
            running.ready = True

    @staticmethod
    def _answers(port: int | None) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{READY_PATH}", timeout=1):
                return True
        except OSError:
            return False


def wait_for_port(kubelet: LocalKubelet, namespace: str, model: str, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (port := kubelet.server_port(namespace, model)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no ready serving pod for {namespace}/{model}")
        time.sleep(POLL_SECONDS)
    return port


def _value(item: Any, pod: Any) -> str:
    """An env entry's value: its own, or the pod label a downward-API fieldRef names, as the
    kubelet resolves it."""
    field = (
        item.value_from.field_ref.field_path
        if item.value_from and item.value_from.field_ref
        else None
    )
    if field is None:
        return str(item.value or "")
    label = re.fullmatch(r"metadata\.labels\['(.+)'\]", field)
    if label is None:
        raise ValueError(f"the local kubelet resolves only pod labels, not {field}")
    return str((pod.metadata.labels or {}).get(label.group(1), ""))
