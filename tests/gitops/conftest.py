"""Argo CD for real, syncing this repository from a git server, in two places:

- on the test control plane (fast): Argo CD, the operator and the git daemon as local processes,
  the models' pods run by the stand-in kubelet (modelops_envtest.local_kubelet), the platform's
  pods reported Ready by it (what they would run, the operator, runs beside it);
- in the kind cluster (marker `kind`): Argo CD as Deployments of the image built here, the git
  daemon on the host's address on the kind network, every pod real.

Either way the git server serves a throwaway copy of this repository whose Applications point
at it, and the tests only push commits and read what Argo CD and the operator report.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitops_env import MODELS_NAMESPACE, PLATFORM_NAMESPACE, GitOps, checked, metadata_version
from modelops_envtest import argocd
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kind import KindCluster
from modelops_envtest.local_kubelet import LocalKubelet

ROOT = Path(__file__).resolve().parents[2]
# Argo CD's own CRDs, shared test data beside the repository when it is there.
SHARED_ARGOCD = ROOT.parent / "shared" / "argocd"
SERVER_PORT = 8080


@pytest.fixture(scope="module")
def argocd_binaries() -> argocd.ArgoCDTools:
    return argocd.build()


@contextlib.contextmanager
def _on_control_plane(request: pytest.FixtureRequest) -> Iterator[GitOps]:
    control_plane: ControlPlane = request.getfixturevalue("control_plane")
    request.getfixturevalue("operator")
    tools: argocd.ArgoCDTools = request.getfixturevalue("argocd_binaries")
    kubectl = checked(control_plane.kubectl)
    argocd.configure(kubectl, SHARED_ARGOCD)
    artifacts = Path(tempfile.mkdtemp(prefix="modelops-gitops-artifacts-"))
    with (
        LocalKubelet(
            control_plane.api_client(), artifacts, stand_in_for=(PLATFORM_NAMESPACE,)
        ) as kubelet,
        argocd.LocalArgoCD(tools, control_plane.kubeconfig) as running,
        argocd.GitServer("127.0.0.1") as git,
    ):

        def served_version(model: str) -> str | None:
            port = kubelet.server_port(MODELS_NAMESPACE, model)
            return None if port is None else metadata_version(port, model)

        def logs() -> str:
            return "\n".join(
                f"--- {name}\n{running.log_tail(name)}"
                for name in ("argocd-application-controller", "argocd-repo-server")
            )

        gitops = GitOps("control-plane", kubectl, git, served_version, logs)
        try:
            yield gitops
        finally:
            _stop_syncing(gitops)
            # The platform's workloads go too: on this control plane their pods run nothing.
            kubectl("-n", PLATFORM_NAMESPACE, "delete", "deployment", "--all", check=False)


@contextlib.contextmanager
def _in_kind(request: pytest.FixtureRequest) -> Iterator[GitOps]:
    cluster: KindCluster = request.getfixturevalue("cluster")
    tools = argocd.build(with_image=True)
    argocd.install_in_cluster(cluster, tools)
    with argocd.GitServer(cluster.host_address()) as git:

        def served_version(model: str) -> str | None:
            try:
                with cluster.port_forward(
                    MODELS_NAMESPACE, f"service/{model}", SERVER_PORT
                ) as port:
                    return metadata_version(port, model)
            except RuntimeError:  # no ready endpoint yet
                return None

        def logs() -> str:
            return "\n".join(
                cluster.kubectl(
                    "-n", argocd.NAMESPACE, "logs", workload, "--tail=40", check=False
                ).stdout
                for workload in (
                    "statefulset/argocd-application-controller",
                    "deployment/argocd-repo-server",
                )
            )

        gitops = GitOps("kind", checked(cluster.kubectl), git, served_version, logs)
        try:
            yield gitops
        finally:
            _stop_syncing(gitops)
            # The cluster goes on to the kind module's tests as the fixture made it: no Argo CD.
            cluster.kubectl("delete", "-k", str(argocd.INSTALL), "--wait=false", check=False)


def _stop_syncing(gitops: GitOps) -> None:
    """Delete the Applications (none carries the cascading finalizer, so nothing they synced
    goes with them), then the models, through the operator."""
    gitops.kubectl(
        "-n", argocd.NAMESPACE, "delete", "application", "--all", "--wait=true", check=False
    )
    gitops.kubectl("-n", MODELS_NAMESPACE, "delete", "mdep", "--all", "--timeout=180s", check=False)
    gitops.kubectl("delete", "namespace", MODELS_NAMESPACE, "--wait=false", check=False)


@pytest.fixture(
    scope="module",
    params=["control-plane", pytest.param("kind", marks=pytest.mark.kind)],
)
def gitops(request: pytest.FixtureRequest) -> Iterator[GitOps]:
    place = _on_control_plane if request.param == "control-plane" else _in_kind
    with place(request) as gitops:
        yield gitops
