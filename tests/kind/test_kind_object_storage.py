"""Object storage on a real node: the iris sample of deploy/samples/object-storage trains in a
Job pod that uploads its version to an S3-compatible server in the cluster, and three serving
replicas each download it, check its digest and serve it, with no claim anywhere. Then the
model file it made is served as a model one already has (spec.model): no Job, pinned to its
digest, and a wrong digest is refused in the fetch's own words. And the model file of
deploy/samples/from-url, served from a web server's http URL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from in_cluster import (
    get_json,
    load_generator,
    predict_script,
    run_python,
    sample_namespace,
    server_pods,
)
from modelops_envtest import kind
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "object-storage"
NAME = "iris-s3"
PROVIDED = "iris-provided"
FROM_URL_SAMPLE = SAMPLE.parent / "from-url"
FROM_URL = "iris-from-url"
READY_TIMEOUT = 600
SETOSA = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    return sample_namespace(cluster, "s3", kind.object_storage_image(), SAMPLE)


def test_three_replicas_serve_the_version_the_job_uploaded(
    cluster: KindCluster, namespace: str
) -> None:
    def ready() -> bool:
        model = get_json(cluster, "-n", namespace, "mdep", NAME)
        observed = model.get("status") or {}
        assert observed.get("phase") != "Failed", observed.get("message")
        return observed.get("phase") == "Ready" and observed.get("readyReplicas") == 3

    wait_until(ready, timeout=READY_TIMEOUT, what=f"{NAME} Ready with 3 replicas")
    served = get_json(cluster, "-n", namespace, "mdep", NAME)["status"]["model"]
    version = served["version"]
    assert served["artifactPath"] == f"s3://models/modelops/{namespace}/{NAME}/{version}"
    assert get_json(cluster, "-n", namespace, "pvc")["items"] == []

    pods = get_json(
        cluster,
        "-n",
        namespace,
        "pods",
        "-l",
        f"modelops.dev/model={NAME},app.kubernetes.io/component=server",
    )["items"]
    assert len(pods) == 3
    for pod in pods:
        logs = cluster.kubectl(
            "-n", namespace, "logs", pod["metadata"]["name"], "-c", "fetch-model"
        ).stdout
        assert f"fetched {served['artifactPath']}" in logs

    # Spread over both workers, each replica serves the version from its own copy: asked
    # directly, across the nodes' pod network, not through the Service.
    assert {pod["spec"]["nodeName"] for pod in pods} == set(cluster.workers())
    for pod in pods:
        url = f"http://{pod['status']['podIP']}:8080/predict"
        answer = json.loads(run_python(cluster, namespace, predict_script(url, SETOSA)))
        assert answer["predictions"] == ["setosa"]
        assert answer["model_version"] == version, pod["metadata"]["name"]
    url = f"http://{NAME}.{namespace}.svc.cluster.local:8080/predict"
    answer = json.loads(run_python(cluster, namespace, predict_script(url, SETOSA)))
    assert answer["model_version"] == version


def test_a_worker_drained_under_load_fails_no_request_and_the_model_is_ready_again(
    cluster: KindCluster, namespace: str
) -> None:
    """The model's disruption budget lets a drain evict one serving pod at a time, each only
    once the one before is replaced; a leaving pod drains its kept-alive connections. The
    worker drained is the one without the bucket's server (its data is the pod's own)."""
    budget = get_json(cluster, "-n", namespace, "pdb", f"{NAME}-server")
    assert budget["spec"]["maxUnavailable"] == 1
    [objects] = get_json(cluster, "-n", namespace, "pods", "-l", "app.kubernetes.io/name=objects")[
        "items"
    ]
    kept = objects["spec"]["nodeName"]
    [drained] = [worker for worker in cluster.workers() if worker != kept]
    assert any(pod["spec"]["nodeName"] == drained for pod in server_pods(cluster, namespace, NAME))
    # The Service's address, not its name: the drain may take the cluster's DNS with it.
    address = get_json(cluster, "-n", namespace, "service", NAME)["spec"]["clusterIP"]
    flags = "--users 2 --duration 900"
    with load_generator(cluster, namespace, f"http://{address}:8080", flags, node=kept) as stop:
        time.sleep(5)
        started = time.monotonic()
        try:
            cluster.kubectl(
                "drain", drained, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                "--timeout=300s",
            )  # fmt: skip
            drain_seconds = time.monotonic() - started

            def ready_on_the_other_worker() -> bool:
                observed = get_json(cluster, "-n", namespace, "mdep", NAME).get("status") or {}
                pods = server_pods(cluster, namespace, NAME)
                return (
                    observed.get("phase") == "Ready"
                    and observed.get("readyReplicas") == 3
                    and {pod["spec"].get("nodeName") for pod in pods} == {kept}
                )

            wait_until(ready_on_the_other_worker, timeout=300, what=f"{NAME} Ready on {kept}")
            report = stop()
        finally:
            cluster.kubectl("uncordon", drained)
    print(
        f"drain of {drained} in {drain_seconds:.0f}s under load: {report['requests']} requests, "
        f"{report['failures']} failed, p99 {report['p99_ms']} ms"
    )
    assert report["failures"] == 0, report["errors"]
    assert report["requests"] > 100


def apply_provided(cluster: KindCluster, namespace: str, uri: str, sha256: str) -> None:
    manifest = yaml.safe_load((SAMPLE / f"{PROVIDED}.yaml").read_text())
    manifest["spec"]["model"] |= {"uri": uri, "sha256": sha256}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))


def test_the_model_file_in_the_bucket_serves_as_a_provided_model(
    cluster: KindCluster, namespace: str
) -> None:
    trained = get_json(cluster, "-n", namespace, "mdep", NAME)["status"]["model"]
    wrong = "0" * 64
    apply_provided(cluster, namespace, f"{trained['artifactPath']}/model.joblib", wrong)

    def refused() -> str | None:
        observed = get_json(cluster, "-n", namespace, "mdep", PROVIDED).get("status") or {}
        return observed.get("message") if observed.get("phase") == "Failed" else None

    message = wait_until(refused, timeout=READY_TIMEOUT, what=f"{PROVIDED} refused")
    assert "CrashLoopBackOff" in message and f"expected {wrong}" in message

    apply_provided(cluster, namespace, f"{trained['artifactPath']}/model.joblib", trained["sha256"])

    def ready() -> bool:
        observed = get_json(cluster, "-n", namespace, "mdep", PROVIDED).get("status") or {}
        return observed.get("phase") == "Ready" and observed.get("readyReplicas") == 2

    wait_until(ready, timeout=READY_TIMEOUT, what=f"{PROVIDED} Ready with 2 replicas")
    served = get_json(cluster, "-n", namespace, "mdep", PROVIDED)["status"]["model"]
    assert served["origin"] == "Provided"
    assert served["version"] == "v" + trained["sha256"][:12]
    jobs = get_json(cluster, "-n", namespace, "jobs", "-l", f"modelops.dev/model={PROVIDED}")
    assert jobs["items"] == []

    url = f"http://{PROVIDED}.{namespace}.svc.cluster.local:8080/predict"
    answer = json.loads(run_python(cluster, namespace, predict_script(url, [[5.1, 3.5, 1.4, 0.2]])))
    assert answer["predictions"] == ["setosa"]
    assert answer["model_version"] == served["version"]


def test_the_from_url_sample_serves_a_model_file_from_a_web_server(cluster: KindCluster) -> None:
    """deploy/samples/from-url as its comment says: the file its web server publishes, fetched
    over http by the serving pod and checked against the sample's digest."""
    namespace = sample_namespace(cluster, "url", kind.MODELOPS_IMAGES[1], FROM_URL_SAMPLE)
    model = yaml.safe_load((FROM_URL_SAMPLE / f"{FROM_URL}.yaml").read_text())

    def ready() -> bool:
        observed = get_json(cluster, "-n", namespace, "mdep", FROM_URL).get("status") or {}
        return observed.get("phase") == "Ready"

    # Applied together, the model's fetch may try before the web server listens: its pod
    # restarts (status says so meanwhile) until the file is there.
    wait_until(ready, timeout=READY_TIMEOUT, what=f"{FROM_URL} Ready")
    served = get_json(cluster, "-n", namespace, "mdep", FROM_URL)["status"]["model"]
    assert served["origin"] == "Provided"
    assert served["sha256"] == model["spec"]["model"]["sha256"]
    [pod] = server_pods(cluster, namespace, FROM_URL)
    logs = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"], "-c", "fetch-model")
    assert f"fetched {model['spec']['model']['uri']}" in logs.stdout
    url = f"http://{FROM_URL}.{namespace}.svc.cluster.local:8080/predict"
    answer = json.loads(run_python(cluster, namespace, predict_script(url, SETOSA)))
    assert answer["predictions"] == ["setosa"]
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
