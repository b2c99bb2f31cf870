"""A release installs on a fresh cluster as a user installs it, from `make release`'s output: the
Helm chart with a stock Helm, then, after the documented uninstall, dist/install.yaml with
kubectl; then the previous release is upgraded to this one under load. Each time the iris sample
goes Ready, and each uninstall (the models first, then the operator, then the CRDs) never waits
on a finalizer. bench/kind/apply_to_ready.py times apply to Ready over several rounds."""

from __future__ import annotations

import copy
import functools
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_cluster import get_json, load_generator, server_pods
from modelops_envtest import kind, release
from modelops_envtest.kind import KindCluster, KindTools
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.own_clusters, pytest.mark.timeout(1500)]

IRIS = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "iris.yaml"
PLATFORM = release.NAMESPACE
PREVIOUS_VERSION = "0.1.0"
PREVIOUS_RELEASE = Path(__file__).parent / "fixtures" / f"modelops-{PREVIOUS_VERSION}-install.yaml"
UPGRADE_VERSION = "0.1.1"
PINNED = "iris-pinned"
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

    wait_ready(cluster, namespace, "iris")
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
    # Monitoring's ConfigMaps, that is: the model's history (its page's versions) stays.
    configmaps = get_json(
        fresh,
        "-A",
        "configmap",
        "-l",
        "app.kubernetes.io/managed-by=modelops,app.kubernetes.io/component!=history",
    )
    assert configmaps["items"] == [], "monitoring=none: no scrape files, no dashboards"

    delete_models(fresh, namespace)
    helm.run("uninstall", "modelops", kubeconfig, "--namespace", PLATFORM, "--wait")
    # Helm keeps a chart's CRDs: step 3 of the uninstall removes them.
    fresh.kubectl("delete", "-f", str(released[1] / "crds"), "--wait", "--timeout=60s")
    wait_until(lambda: nothing_of_modelops_left(fresh), timeout=120, what="nothing left")


def test_the_manifest_installs_with_kubectl_serves_a_model_and_uninstalls(
    fresh: KindCluster, released: tuple[Path, Path]
) -> None:
    manifest = str(released[0])
    install_manifest(fresh, manifest)
    namespace = f"kubectl-{uuid.uuid4().hex[:6]}"
    seconds = apply_iris(fresh, namespace)
    print(f"kubectl install: iris from kubectl apply to Ready in {seconds:.1f}s")
    condition = monitored(fresh, namespace)
    assert condition["status"] == "True", condition["message"]

    delete_models(fresh, namespace)
    # The peering object goes with its CRD, before kubectl asks for it by name.
    fresh.kubectl("delete", "-f", manifest, "--ignore-not-found", "--wait", "--timeout=120s")
    wait_until(lambda: nothing_of_modelops_left(fresh), timeout=120, what="nothing left")


def test_an_upgrade_from_the_previous_release_fails_no_request_and_retrains_nothing(
    fresh: KindCluster, tmp_path: Path
) -> None:
    """The previous release's manifest, two models Ready, then this release applied over it as
    docs/install.md says while modelops-load sends kept-alive requests. The model on the
    release's server image rolls to the new tag; the model pinned to an image keeps its pods;
    neither trains again. Then the documented uninstall, the models still there.

    The previous release's images are this build, tagged as that release in the node's
    containerd: what is tested is the upgrade of the objects and the rollout it causes."""
    install_manifest(fresh, previous_release(tmp_path))
    namespace = f"upgrade-{uuid.uuid4().hex[:6]}"
    fresh.kubectl("create", "namespace", namespace)
    iris = yaml.safe_load(IRIS.read_text())
    pinned = copy.deepcopy(iris)
    pinned["metadata"]["name"] = PINNED
    pinned["spec"]["serving"]["image"] = f"modelops/inference-server:{PREVIOUS_VERSION}"
    for model in (iris, pinned):
        fresh.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(model))
    for name in ("iris", PINNED):
        wait_ready(fresh, namespace, name)
        # This build's operator under the previous release's CRD, which prunes what status
        # gained since (status.model.metadataSha256): a model's first rollout, made from its
        # training pod's summary, pins the digest, the next, made from status, does not. That
        # second rollout is this test's mix of releases, not the upgrade's: it ends first.
        wait_until(
            functools.partial(rolled_out, fresh, namespace, name),
            timeout=READY_TIMEOUT,
            what=f"{name}'s rollout to end",
        )
    before = {name: models_world(fresh, namespace, name) for name in ("iris", PINNED)}

    upgraded, _ = release.release(UPGRADE_VERSION, tmp_path)
    for node in fresh.workers():
        for image in kind.MODELOPS_IMAGES:
            tag_in_node(fresh, node, image, image.rsplit(":", 1)[0] + f":{UPGRADE_VERSION}")
    address = get_json(fresh, "-n", namespace, "service", "iris")["spec"]["clusterIP"]
    flags = "--users 2 --duration 900"
    with load_generator(fresh, namespace, f"http://{address}:8080", flags) as stop:
        time.sleep(3)
        install_manifest(fresh, str(upgraded))

        def rolled() -> bool:
            pods = server_pods(fresh, namespace, "iris")
            return (
                len(pods) == 2
                and all(server_image(pod).endswith(f":{UPGRADE_VERSION}") for pod in pods)
                and all(pod_ready(pod) for pod in pods)
                and phase(fresh, namespace, "iris") == "Ready"
            )

        wait_until(rolled, timeout=READY_TIMEOUT, what="iris rolled to the new server image")
        report = stop()
    print(
        f"upgrade {PREVIOUS_VERSION} -> {UPGRADE_VERSION} under load: {report['requests']} "
        f"requests, {report['failures']} failed, p99 {report['p99_ms']} ms"
    )
    assert report["failures"] == 0, report["errors"]
    assert report["requests"] > 100

    after = {name: models_world(fresh, namespace, name) for name in ("iris", PINNED)}
    for name in ("iris", PINNED):
        assert after[name]["version"] == before[name]["version"], f"{name} retrained"
        assert after[name]["jobs"] == before[name]["jobs"], f"{name} ran another Job"
    # The pinned model's pod spec is the same in both releases: the very same pods serve on.
    assert after[PINNED]["pods"] == before[PINNED]["pods"]
    assert set(after["iris"]["pods"]).isdisjoint(before["iris"]["pods"])

    # The documented uninstall with the models present: none waits on a finalizer.
    delete_models(fresh, namespace)
    fresh.kubectl("delete", "-f", str(upgraded), "--ignore-not-found", "--wait", "--timeout=120s")
    wait_until(lambda: nothing_of_modelops_left(fresh), timeout=120, what="nothing left")


def previous_release(directory: Path) -> str:
    """The previous release's manifest, fitted to this build's operator, which it runs: told to
    write no NetworkPolicies, as that release wrote none, and allowed to watch them (its
    ClusterRole grants nothing of them, and this build's operator stops on a watch it is
    refused)."""
    documents = [doc for doc in yaml.safe_load_all(PREVIOUS_RELEASE.read_text()) if doc]
    operator = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "MODELOPS_NETWORK_POLICIES", "value": "false"})
    role = next(
        doc
        for doc in documents
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "modelops-operator"
    )
    role["rules"].append(
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "list", "watch"],
        }
    )
    manifest = directory / PREVIOUS_RELEASE.name
    manifest.write_text(yaml.safe_dump_all(documents))
    return str(manifest)


def install_manifest(cluster: KindCluster, manifest: str) -> None:
    cluster.kubectl("apply", "--server-side", "-f", manifest)
    cluster.wait_rolled_out(PLATFORM, "deployment/modelops-operator")


def tag_in_node(cluster: KindCluster, node: str, image: str, tag: str) -> None:
    """`tag` for `image` in the node's containerd alone, not in the machine's Docker."""
    ctr = ["docker", "exec", node, "ctr", "--namespace", "k8s.io", "images", "tag", "--force"]
    subprocess.run(
        [*ctr, f"docker.io/{image}", f"docker.io/{tag}"],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )


def wait_ready(cluster: KindCluster, namespace: str, name: str) -> None:
    wait_until(
        lambda: phase(cluster, namespace, name) == "Ready",
        timeout=READY_TIMEOUT,
        what=f"{name} Ready",
    )


def phase(cluster: KindCluster, namespace: str, name: str) -> str | None:
    observed = get_json(cluster, "-n", namespace, "mdep", name).get("status") or {}
    assert observed.get("phase") != "Failed", observed.get("message")
    return observed.get("phase")


def rolled_out(cluster: KindCluster, namespace: str, name: str) -> bool:
    """The model's Deployment has its replicas, all of its newest ReplicaSet, and no other pod."""
    deployment = get_json(cluster, "-n", namespace, "deployment", f"{name}-server")
    wanted = deployment["spec"]["replicas"]
    state = deployment.get("status") or {}
    return (
        state.get("observedGeneration") == deployment["metadata"]["generation"]
        and state.get("updatedReplicas") == wanted
        and state.get("readyReplicas") == wanted
        and len(server_pods(cluster, namespace, name)) == wanted
    )


def models_world(cluster: KindCluster, namespace: str, name: str) -> dict[str, Any]:
    """What an upgrade must leave as it was: the version served, the training Jobs, and the
    serving pods (name to restart count)."""
    jobs = get_json(cluster, "-n", namespace, "jobs", "-l", f"modelops.dev/model={name}")
    return {
        "version": get_json(cluster, "-n", namespace, "mdep", name)["status"]["model"]["version"],
        "jobs": sorted(job["metadata"]["uid"] for job in jobs["items"]),
        "pods": {
            pod["metadata"]["uid"]: sum(
                s["restartCount"] for s in pod["status"]["containerStatuses"]
            )
            for pod in server_pods(cluster, namespace, name)
        },
    }


def server_image(pod: dict[str, Any]) -> str:
    return str(next(c["image"] for c in pod["spec"]["containers"] if c["name"] == "server"))


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
