"""Faults on the kind cluster while a model serves: the operator's pod killed in the middle of a
rollout, the apiserver unreachable for 30 s, a worker restarted. Each converges with nothing
lost: the version status names is the one every serving pod runs, each training run had one
Job, no child is left over, and (but for the restarted worker's own pods) no request failed."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from in_cluster import get_json, load_generator, server_pods
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until
from modelops_operator import constants

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1200)]

IRIS = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "iris.yaml"
PLATFORM = "modelops-system"
READY_TIMEOUT = 300
OUTAGE_SECONDS = 30


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> Iterator[str]:
    """A namespace with the iris sample Ready in it."""
    name = f"faults-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("-n", name, "apply", "-f", str(IRIS))
    wait_ready(cluster, name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def model(cluster: KindCluster, namespace: str) -> dict[str, Any]:
    return dict(get_json(cluster, "-n", namespace, "mdep", "iris"))


def wait_ready(cluster: KindCluster, namespace: str) -> str:
    """Ready for the current generation, its rollout over: the version it serves."""

    def ready() -> str | None:
        body = model(cluster, namespace)
        observed = body.get("status") or {}
        assert observed.get("phase") != "Failed", observed.get("message")
        if (
            observed.get("phase") != "Ready"
            or observed.get("observedGeneration") != body["metadata"]["generation"]
        ):
            return None
        version = str(observed["model"]["version"])
        pods = server_pods(cluster, namespace, "iris")
        serving = {pod["metadata"]["labels"][constants.LABEL_VERSION] for pod in pods}
        return version if serving == {version} else None

    return str(wait_until(ready, timeout=READY_TIMEOUT, what="iris Ready, one version serving"))


def children(cluster: KindCluster, namespace: str) -> dict[str, list[str]]:
    """The model's Jobs, and its ReplicaSets that still have pods."""
    selector = f"{constants.LABEL_MODEL}=iris"
    jobs = get_json(cluster, "-n", namespace, "jobs", "-l", selector)["items"]
    replica_sets = get_json(cluster, "-n", namespace, "replicasets", "-l", selector)["items"]
    return {
        "jobs": sorted(job["metadata"]["name"] for job in jobs),
        "replica sets": sorted(
            rs["metadata"]["name"] for rs in replica_sets if rs["spec"].get("replicas")
        ),
    }


def retrain(cluster: KindCluster, namespace: str, max_depth: int) -> None:
    patch = {"spec": {"training": {"hyperparameters": {"max_depth": max_depth}}}}
    cluster.kubectl(
        "-n", namespace, "patch", "mdep", "iris", "--type=merge", "-p", json.dumps(patch)
    )


def operator_pod(cluster: KindCluster) -> str:
    pods = get_json(
        cluster, "-n", PLATFORM, "pods", "-l", "app.kubernetes.io/name=modelops-operator"
    )["items"]
    [running] = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    return str(running["metadata"]["name"])


def test_the_operator_killed_in_the_middle_of_a_rollout_converges(
    cluster: KindCluster, namespace: str
) -> None:
    before = wait_ready(cluster, namespace)
    jobs_before = children(cluster, namespace)["jobs"]
    retrain(cluster, namespace, 3)

    def rolling_out() -> bool:
        body = model(cluster, namespace)
        observed = body.get("status") or {}
        return (observed.get("model") or {}).get("version") not in (None, before) and (
            observed.get("phase") == "Deploying"
        )

    wait_until(rolling_out, timeout=READY_TIMEOUT, what="the new version's rollout")
    killed = operator_pod(cluster)
    cluster.kubectl("-n", PLATFORM, "delete", "pod", killed, "--grace-period=0", "--force")

    after = wait_ready(cluster, namespace)
    assert operator_pod(cluster) != killed
    assert after != before
    left = children(cluster, namespace)
    assert len(left["jobs"]) == len(jobs_before) + 1, f"one Job for the new run: {left}"
    assert set(jobs_before) < set(left["jobs"])
    assert len(left["replica sets"]) == 1, f"no old ReplicaSet keeps pods: {left}"


def test_the_apiserver_away_for_30_s_loses_no_request_and_the_operator_comes_back(
    cluster: KindCluster, namespace: str
) -> None:
    """The control-plane node's container is paused (apiserver, etcd, scheduler and controllers
    frozen), so the workers' kubelets, the operator and kube-proxy lose the apiserver while the
    serving pods go on answering; after it, the operator acts on a change as before."""
    served = wait_ready(cluster, namespace)
    world = children(cluster, namespace)
    address = get_json(cluster, "-n", namespace, "service", "iris")["spec"]["clusterIP"]
    control_plane = f"{cluster.name}-control-plane"
    # The Service's address, not its name: CoreDNS may be on the paused node.
    with load_generator(
        cluster, namespace, f"http://{address}:8080", "--users 2 --duration 600"
    ) as stop:
        time.sleep(3)
        subprocess.run(["docker", "pause", control_plane], check=True, timeout=60)
        try:
            time.sleep(OUTAGE_SECONDS)
        finally:
            subprocess.run(["docker", "unpause", control_plane], check=True, timeout=60)
        wait_until(
            lambda: cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
            timeout=120,
            what="the apiserver back",
        )
        report = stop()
    print(
        f"apiserver away {OUTAGE_SECONDS} s: {report['requests']} requests, "
        f"{report['failures']} failed, p99 {report['p99_ms']} ms"
    )
    assert report["failures"] == 0, report["errors"]
    assert set(report["versions"]) == {served}

    # The operator acts again: a change of replicas reaches the Deployment and status.
    patch = {"spec": {"serving": {"replicas": 3}}}
    cluster.kubectl(
        "-n", namespace, "patch", "mdep", "iris", "--type=merge", "-p", json.dumps(patch)
    )
    assert wait_ready(cluster, namespace) == served
    wait_until(
        lambda: len(server_pods(cluster, namespace, "iris")) == 3,
        timeout=READY_TIMEOUT,
        what="three serving pods",
    )
    assert children(cluster, namespace) == world, "no Job ran, no ReplicaSet was added"
    status = model(cluster, namespace)["status"]
    assert status["message"].endswith("3/3 replicas ready"), status["message"]


def test_a_worker_restarted_while_the_model_serves_converges_with_nothing_lost(
    cluster: KindCluster, namespace: str
) -> None:
    """`docker restart` of a worker that runs serving pods, as a machine reboots: its pods
    start again there (their requests fail meanwhile, as on any node that goes down), and the
    model is Ready again on every replica, serving the same version, with no Job run and no
    ReplicaSet added."""
    served = wait_ready(cluster, namespace)
    world = children(cluster, namespace)
    pods = server_pods(cluster, namespace, "iris")
    node = pods[0]["spec"]["nodeName"]
    on_node = {
        pod["metadata"]["name"]: restarts(pod) for pod in pods if pod["spec"]["nodeName"] == node
    }
    cluster.restart_node(node)

    def started_again() -> bool:
        now = {pod["metadata"]["name"]: pod for pod in server_pods(cluster, namespace, "iris")}
        return all(
            name not in now or restarts(now[name]) > count for name, count in on_node.items()
        )

    wait_until(
        started_again, timeout=READY_TIMEOUT, what=f"the serving pods of {node} started again"
    )
    assert wait_ready(cluster, namespace) == served
    wait_until(
        lambda: all(ready(pod) for pod in server_pods(cluster, namespace, "iris")),
        timeout=READY_TIMEOUT,
        what="every serving pod ready",
    )
    assert children(cluster, namespace) == world, "no Job ran, no ReplicaSet was added"
    address = get_json(cluster, "-n", namespace, "service", "iris")["spec"]["clusterIP"]
    with load_generator(
        cluster, namespace, f"http://{address}:8080", "--users 2 --duration 600"
    ) as stop:
        time.sleep(5)
        report = stop()
    assert report["failures"] == 0, report["errors"]
    assert set(report["versions"]) == {served}


def restarts(pod: dict[str, Any]) -> int:
    return sum(
        status.get("restartCount", 0) for status in pod["status"].get("containerStatuses", [])
    )


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
