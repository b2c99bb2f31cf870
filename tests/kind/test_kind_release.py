"""A release installs on a fresh cluster as a user installs it, from `make release`'s output: the
Helm chart with a stock Helm, then, after the documented uninstall, dist/install.yaml with
kubectl. Each time the iris sample goes Ready, and each uninstall (the models first, then the
operator, then the CRDs) never waits on a finalizer."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from in_cluster import get_json
from modelops_envtest import kind, release
from modelops_envtest.kind import KindCluster, KindTools
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1500)]

IRIS = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "iris.yaml"
PLATFORM = release.NAMESPACE
READY_TIMEOUT = 300


@pytest.fixture(scope="module")
def fresh(kind_tools: KindTools) -> Iterator[KindCluster]:
    """A new one-node cluster with the release's images and nothing else."""
    with KindCluster(kind_tools, workers=0) as cluster:
        print(f"fresh one-node kind cluster created in {cluster.create_seconds:.0f}s")
        cluster.load(*kind.MODELOPS_IMAGES)
        yield cluster


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The release of the images built for the tests, as `make release` writes it."""
    return release.release(kind.IMAGE_VERSION, tmp_path_factory.mktemp("release"))


def apply_iris(cluster: KindCluster, namespace: str) -> float:
    """Seconds from `kubectl apply` of the iris sample to Ready."""
    cluster.kubectl("create", "namespace", namespace)
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "apply", "-f", str(IRIS))

    def ready() -> bool:
        observed = get_json(cluster, "-n", namespace, "mdep", "iris").get("status") or {}
        assert observed.get("phase") != "Failed", observed.get("message")
        return observed.get("phase") == "Ready"

    wait_until(ready, timeout=READY_TIMEOUT, what="iris Ready")
    return time.monotonic() - started


def delete_models(cluster: KindCluster, namespace: str) -> None:
    """Step 1 of the uninstall: the models, while the operator runs; it never hangs."""
    cluster.kubectl("delete", "mdep", "--all", "-n", namespace, "--wait", "--timeout=120s")
    assert get_json(cluster, "-n", namespace, "mdep")["items"] == []


def nothing_of_modelops_left(cluster: KindCluster) -> bool:
    crds = get_json(cluster, "crd")["items"]
    left = [crd["metadata"]["name"] for crd in crds if "modelops" in crd["metadata"]["name"]]
    operator = cluster.kubectl(
        "-n", PLATFORM, "get", "deployment", "modelops-operator", check=False
    )
    return not left and operator.returncode != 0


def monitored(cluster: KindCluster, namespace: str) -> dict[str, Any]:
    status = get_json(cluster, "-n", namespace, "mdep", "iris")["status"]
    return next(c for c in status["conditions"] if c["type"] == "Monitored")


def test_the_chart_installs_with_helm_serves_a_model_and_uninstalls(
    fresh: KindCluster, released: tuple[Path, Path], tmp_path: Path
) -> None:
    helm = release.helm(tmp_path / "helm")
    kubeconfig = f"--kubeconfig={fresh.kubeconfig}"
    helm.run(
        "install", "modelops", str(released[1]), kubeconfig, "--namespace", PLATFORM,
        "--create-namespace", "--wait", "--timeout=5m",
        # The images are loaded, never pulled; a cluster with no Prometheus and no Grafana.
        "--set", "images.pullPolicy=Never",
        "--set", "monitoring.prometheus=none", "--set", "monitoring.dashboards=none",
    )  # fmt: skip
    namespace = f"helm-{uuid.uuid4().hex[:6]}"
    seconds = apply_iris(fresh, namespace)
    print(f"Helm install: iris from kubectl apply to Ready in {seconds:.1f}s")
    condition = monitored(fresh, namespace)
    assert condition["status"] == "False"
    assert "installed without Prometheus wiring" in condition["message"]
    assert "installed without dashboards" in condition["message"]
    configmaps = get_json(fresh, "-A", "configmap", "-l", "app.kubernetes.io/managed-by=modelops")
    assert configmaps["items"] == [], "monitoring=none: no scrape files, no dashboards"

    delete_models(fresh, namespace)
    helm.run("uninstall", "modelops", kubeconfig, "--namespace", PLATFORM, "--wait")
    # Helm keeps a chart's CRDs: step 3 of the uninstall removes them.
    fresh.kubectl("delete", "-f", str(released[1] / "crds"), "--wait", "--timeout=60s")
    wait_until(lambda: nothing_of_modelops_left(fresh), timeout=120, what="nothing left")


def test_the_manifest_installs_with_kubectl_serves_a_model_and_uninstalls(
    fresh: KindCluster, released: tuple[Path, Path]
) -> None:
    """Also how fast a model is Ready on a real node: the iris sample applied five times."""
    manifest = str(released[0])
    fresh.kubectl("apply", "--server-side", "-f", manifest)
    fresh.kubectl(
        "-n", PLATFORM, "rollout", "status", "deployment/modelops-operator", "--timeout=300s"
    )
    seconds = []
    for _ in range(5):
        namespace = f"kubectl-{uuid.uuid4().hex[:6]}"
        seconds.append(apply_iris(fresh, namespace))
        condition = monitored(fresh, namespace)
        assert condition["status"] == "True", condition["message"]
        delete_models(fresh, namespace)
    print(
        "kubectl install: iris from kubectl apply to Ready in "
        f"{', '.join(f'{s:.1f}' for s in seconds)}s (median {statistics.median(seconds):.1f}s)"
    )

    # The peering object goes with its CRD, before kubectl asks for it by name.
    fresh.kubectl("delete", "-f", manifest, "--ignore-not-found", "--wait", "--timeout=120s")
    wait_until(lambda: nothing_of_modelops_left(fresh), timeout=120, what="nothing left")
