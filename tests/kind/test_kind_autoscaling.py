"""Autoscaling that scales, on a real cluster: metrics-server (deploy/addons, built here) serves
the serving pods' CPU use, and the model's HorizontalPodAutoscaler adds a replica under load and
removes it once the load stops; status counts the replicas as they come and go."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_cluster import get_json, load_generator
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1200)]

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "wine.yaml"
NAME = "wine"
READY_TIMEOUT = 600
# A request the load one pod of the cluster sends is well above (150 requests a second take
# several times 50m), and an idle replica well below: two replicas go back to one only when
# their mean is at most half the target (25m). An idle server answers a readiness probe a
# second, which took up to 15m on a busy machine: with 20m requested, it stayed at two.
SERVING = {
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 2,
        "targetCPUUtilizationPercentage": 50,
        "scaleDownStabilizationSeconds": 15,
    },
}


def model_status(cluster: KindCluster, namespace: str) -> dict[str, Any]:
    return get_json(cluster, "-n", namespace, "mdep", NAME).get("status") or {}


def hpa_status(cluster: KindCluster, namespace: str) -> dict[str, Any]:
    return get_json(cluster, "-n", namespace, "hpa", f"{NAME}-server").get("status") or {}


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    """The wine sample, Ready with one replica and its CPU use known to the autoscaler."""
    name = f"hpa-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    manifest = yaml.safe_load(SAMPLE.read_text())
    manifest["spec"]["serving"] = SERVING
    cluster.kubectl("-n", name, "apply", "-f", "-", stdin=json.dumps(manifest))

    def ready() -> bool:
        observed = model_status(cluster, name)
        assert observed.get("phase") != "Failed", observed.get("message")
        return observed.get("phase") == "Ready" and observed.get("readyReplicas") == 1

    wait_until(ready, timeout=READY_TIMEOUT, what=f"{NAME} Ready with one replica")
    wait_until(
        lambda: any(
            metric.get("resource", {}).get("current", {}).get("averageUtilization") is not None
            for metric in hpa_status(cluster, name).get("currentMetrics") or []
        ),
        timeout=180,
        what="the autoscaler to read the pod's CPU use from metrics-server",
    )
    return name


def test_load_scales_the_model_out_and_its_end_scales_it_back_in(
    cluster: KindCluster, namespace: str
) -> None:
    url = f"http://{NAME}.{namespace}.svc.cluster.local:8080"
    with load_generator(cluster, namespace, url, "--rate 150 --duration 600") as stop:
        started = time.monotonic()
        wait_until(
            lambda: model_status(cluster, namespace).get("readyReplicas") == 2,
            timeout=300,
            what=f"a second ready replica in {NAME}'s status ({hpa_status(cluster, namespace)})",
        )
        scaled_out = time.monotonic() - started
        report = stop()
    assert report["failures"] == 0, report["errors"]
    stopped = time.monotonic()
    wait_until(
        lambda: (
            hpa_status(cluster, namespace).get("desiredReplicas") == 1
            and model_status(cluster, namespace).get("readyReplicas") == 1
        ),
        timeout=300,
        what=f"{NAME} back to one replica ({hpa_status(cluster, namespace)})",
    )
    print(
        f"autoscaling: load start to a second ready replica {scaled_out:.0f}s, load end to one "
        f"replica {time.monotonic() - stopped:.0f}s; {report['requests']} requests at "
        f"{report['rps']} req/s"
    )
