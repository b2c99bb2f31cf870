"""Object storage on a real node: the iris sample of deploy/samples/object-storage trains in a
Job pod that uploads its version to an S3-compatible server in the cluster, and three serving
replicas each download it, check its digest and serve it, with no claim anywhere."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from in_cluster import get_json, predict_script, run_python
from modelops_envtest import kind
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "object-storage"
NAME = "iris-s3"
READY_TIMEOUT = 600


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    name = f"s3-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.load(kind.object_storage_image())
    cluster.kubectl("-n", name, "apply", "-k", str(SAMPLE))
    return name


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
