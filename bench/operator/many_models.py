"""Benchmark: 200 ModelDeployments created at once against the test control plane.

    uv run python bench/operator/many_models.py [--count 200]

Prints the time until every one has its training Job, the time until all are Ready once the
kubelet stand-in has finished their training pods and readied their serving pods, and the
operator's peak memory (VmHWM). Not a test: run it on request and compare runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess, install_prerequisites
from modelops_envtest.waiting import wait_until
from modelops_trainer import train

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def manifests(iris: dict[str, Any], count: int) -> str:
    """`count` copies of the iris sample with one serving replica each, as one List."""
    spec = iris["spec"] | {"serving": iris["spec"]["serving"] | {"replicas": 1}}
    items = [
        iris | {"metadata": {"name": f"iris-{index:03d}", "namespace": NAMESPACE}, "spec": spec}
        for index in range(count)
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    count = parser.parse_args().count

    with ControlPlane() as plane:
        install_prerequisites(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        operator = OperatorProcess(plane).start()
        client = plane.api_client()
        batch = kubernetes.client.BatchV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)
        kubelet = Kubelet(client)
        iris = yaml.safe_load((ROOT / "deploy" / "samples" / "iris.yaml").read_text())
        summary: dict[str, Any] = train(
            iris["spec"]["training"], Path(tempfile.mkdtemp()), "iris", NAMESPACE
        )

        started = time.monotonic()
        plane.kubectl("apply", "-f", "-", stdin=manifests(iris, count))
        applied = time.monotonic() - started
        wait_until(
            lambda: len(batch.list_namespaced_job(NAMESPACE).items) >= count,
            timeout=600,
            what="all Jobs",
        )
        all_jobs = time.monotonic() - started

        # Play the kubelet: every training pod succeeds with the real trainer's summary.
        marked_at = time.monotonic()
        for job in batch.list_namespaced_job(NAMESPACE).items:
            kubelet.finish_training(NAMESPACE, job.metadata.name, summary)

        def phases() -> dict[str, int]:
            counts: dict[str, int] = {}
            listed = custom.list_namespaced_custom_object(
                "modelops.dev", "v1alpha1", NAMESPACE, "modeldeployments"
            )
            for item in listed["items"]:
                phase = (item.get("status") or {}).get("phase", "None")
                counts[phase] = counts.get(phase, 0) + 1
            return counts

        def all_ready() -> bool:
            kubelet.make_ready(NAMESPACE)
            return phases().get("Ready", 0) == count

        wait_until(all_ready, timeout=900, what="all Ready")
        all_ready_after = time.monotonic() - marked_at
        peak = peak_rss_mib(operator.process.pid) if operator.process else float("nan")
        operator.stop(kill=True)

    print(f"models                         {count}")
    print(f"kubectl apply of all           {applied:7.1f} s")
    print(f"until every training Job       {all_jobs:7.1f} s")
    print(f"pods marked -> all Ready       {all_ready_after:7.1f} s")
    print(f"operator peak memory (VmHWM)   {peak:7.1f} MiB")


if __name__ == "__main__":
    main()
