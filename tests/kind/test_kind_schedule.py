"""Scheduled retraining on a real node: a model trained every minute from a CSV that a web
server in the cluster serves; new rows there become a new version at the next scheduled run,
which the quality gate promotes and the Deployment rolls out, the old one kept in history."""

from __future__ import annotations

import json
import uuid

import pytest
from in_cluster import CLIENT_IMAGE, get_json
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until
from sklearn.datasets import load_iris

pytestmark = [pytest.mark.kind, pytest.mark.timeout(900)]

NAME = "flowers"
TIMEOUT = 420


def iris_csv(rows: slice) -> str:
    iris = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,label"] + [
        ",".join([*map(str, features), str(iris.target_names[target])])
        for features, target in zip(iris.data[rows], iris.target[rows], strict=True)
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    """A namespace with a web server (`data`) over a folder the test writes into."""
    name = f"sched-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    labels = {"app.kubernetes.io/name": "data"}
    server = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "data", "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "http",
                    "image": CLIENT_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-m", "http.server", "8000", "--directory", "/data"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "data"},
        "spec": {"selector": labels, "ports": [{"port": 8000}]},
    }
    for manifest in (server, service):
        cluster.kubectl("-n", name, "apply", "-f", "-", stdin=json.dumps(manifest))
    cluster.kubectl("-n", name, "wait", "--for=condition=Ready", "pod/data", "--timeout=300s")
    return name


def publish(cluster: KindCluster, namespace: str, csv: str) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "exec",
        "-i",
        "data",
        "--",
        "sh",
        "-c",
        "cat > /data/flowers.csv",
        stdin=csv,
    )


def test_new_rows_become_the_served_version_at_the_next_scheduled_run(
    cluster: KindCluster, namespace: str
) -> None:
    publish(cluster, namespace, iris_csv(slice(0, 150, 2)))
    model = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "training": {
                "dataset": {
                    "csv": {"url": "http://data:8000/flowers.csv", "targetColumn": "label"}
                },
                "estimator": "LogisticRegression",
                "hyperparameters": {"max_iter": 500},
                "qualityGate": {"metric": "accuracy", "threshold": 0.8},
                "schedule": "* * * * *",
            },
            "serving": {"replicas": 1},
        },
    }
    cluster.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(model))

    def status() -> dict:
        found = get_json(cluster, "-n", namespace, "mdep", NAME).get("status") or {}
        assert found.get("phase") != "Failed", found.get("message")
        return found

    first = wait_until(
        lambda: (found := status()).get("phase") == "Ready" and found["model"]["version"],
        timeout=TIMEOUT,
        what=f"{NAME} Ready",
    )

    publish(cluster, namespace, iris_csv(slice(1, 150, 2)))

    def promoted() -> dict | None:
        found = status()
        model = found.get("model") or {}
        changed = found.get("phase") == "Ready" and model.get("version") not in (None, first)
        return found if changed else None

    latest = wait_until(promoted, timeout=TIMEOUT, what="the next scheduled run's version served")
    assert [entry["version"] for entry in latest["history"]][1] == first
    assert latest["training"]["scheduledFor"] < latest["nextTrainingAt"]
    assert latest["model"]["score"].startswith("accuracy=")
