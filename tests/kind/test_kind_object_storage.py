"""Object storage on a real node: the iris sample of deploy/samples/object-storage trains in a
Job pod that uploads its version to an S3-compatible server in the cluster, and three serving
replicas each download it, check its digest and serve it, with no claim anywhere. Then the
model file it made is served as a model one already has (spec.model): no Job, pinned to its
digest, and a wrong digest is refused in the fetch's own words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from in_cluster import get_json, predict_script, run_python, sample_namespace
from modelops_envtest import kind
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "object-storage"
NAME = "iris-s3"
PROVIDED = "iris-provided"
READY_TIMEOUT = 600


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

    # Each replica is Ready only once its server loaded its own copy; the Service answers.
    url = f"http://{NAME}.{namespace}.svc.cluster.local:8080/predict"
    answer = json.loads(run_python(cluster, namespace, predict_script(url, [[5.1, 3.5, 1.4, 0.2]])))
    assert answer["predictions"] == ["setosa"]
    assert answer["model_version"] == version


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
