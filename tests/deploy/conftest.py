"""The control-plane side of the deploy tests: the CRDs installed for real (server-side dry
runs of custom resources need them), and the namespaces the manifests name."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_manifests import (
    CRDS,
    MODELS_NAMESPACE,
    MONITORING_NAMESPACE,
    RELEASE_VERSION,
    SHARED_ARGOCD,
    kubectl_ok,
)
from modelops_envtest import binaries, release, upstream_crds
from modelops_envtest.controlplane import ControlPlane

ARGOCD_NAMESPACE = "argocd"


def ensure_namespace(control_plane: ControlPlane, name: str) -> None:
    if control_plane.kubectl("get", "namespace", name, check=False).returncode != 0:
        kubectl_ok(control_plane, "create", "namespace", name)


@pytest.fixture(scope="session")
def modelops_crds(control_plane: ControlPlane) -> None:
    """The ModelDeployment and kopf peering CRDs, applied as tests/operator applies them."""
    kubectl_ok(control_plane, "apply", "--server-side", "-f", str(CRDS))
    for crd in (
        "modeldeployments.modelops.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        kubectl_ok(
            control_plane, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"
        )
    for namespace in (MONITORING_NAMESPACE, MODELS_NAMESPACE):
        ensure_namespace(control_plane, namespace)


@pytest.fixture(scope="session")
def argocd_crds(control_plane: ControlPlane) -> None:
    """Argo CD's Application and AppProject CRDs (../shared/argocd/, else Argo CD's Go module)."""
    for path in upstream_crds.ARGOCD.paths(SHARED_ARGOCD):
        kubectl_ok(control_plane, "apply", "--server-side", "-f", str(path))
    for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
        kubectl_ok(
            control_plane, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"
        )
    ensure_namespace(control_plane, ARGOCD_NAMESPACE)


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> release.Helm:
    try:
        return release.helm(tmp_path_factory.mktemp("helm"))
    except binaries.BinariesUnavailable as error:
        pytest.fail(f"a stock Helm could not be built: {error}")


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(install.yaml, chart) of release RELEASE_VERSION, as `make release` writes them."""
    return release.release(RELEASE_VERSION, tmp_path_factory.mktemp("release"))
