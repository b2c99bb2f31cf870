"""Benchmark: `kubectl apply` of the iris sample to `Ready` on a real node, with where the time
goes.

    uv run python bench/kind/apply_to_ready.py [--rounds 5] [--keep]

Creates a one-node kind cluster of the test image (as `make test` builds it), installs the
release manifest with kubectl as a user does, then applies deploy/samples/iris.yaml into a new
namespace per round and times it to `phase: Ready`, seen by one watch (`kubectl wait`): a kubectl
process every 100 ms took enough of a small machine's CPU to add about 2 s. Each round's
steps come from the objects' own timestamps (whole seconds, the API's resolution): the training
Job created, its pod's container started and finished, the serving Deployment created, its pods
ready. Prints each round, the median, and KServe's published figure beside it. Not a test: run it
on request, on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from modelops_envtest import kind, release

IRIS = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "iris.yaml"
# KServe's documented time to ready for its small scikit-learn example.
KSERVE_SECONDS = 29


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the cluster for a look")
    arguments = parser.parse_args()
    tools = kind.build()
    with kind.KindCluster(tools, workers=0) as cluster, tempfile.TemporaryDirectory() as root:
        cluster.keep = arguments.keep
        print(f"one-node cluster {cluster.name} created in {cluster.create_seconds:.0f}s")
        cluster.load(*kind.MODELOPS_IMAGES)
        manifest, _ = release.release(kind.IMAGE_VERSION, Path(root))
        cluster.kubectl("apply", "--server-side", "-f", str(manifest))
        cluster.kubectl(
            "-n", release.NAMESPACE, "rollout", "status", "deployment/modelops-operator",
            "--timeout=300s",
        )  # fmt: skip
        rounds = [one_round(cluster) for _ in range(arguments.rounds)]
    steps = list(rounds[0])
    print("| round | " + " | ".join(steps) + " |")
    print("| ---: | " + " | ".join("---:" for _ in steps) + " |")
    for number, seconds in enumerate(rounds, start=1):
        print(f"| {number} | " + " | ".join(f"{seconds[step]:.1f}" for step in steps) + " |")
    total = [seconds["apply to Ready"] for seconds in rounds]
    print(
        f"\niris, kubectl apply to Ready: median {statistics.median(total):.1f}s "
        f"(min {min(total):.1f}, max {max(total):.1f}) over {len(total)} rounds; "
        f"KServe's published figure for a small scikit-learn model: about {KSERVE_SECONDS}s"
    )
    print(json.dumps({"rounds": rounds}))


def one_round(cluster: kind.KindCluster) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    applied = time.time()
    cluster.kubectl("-n", namespace, "apply", "-f", str(IRIS))
    waited = cluster.kubectl(
        "-n", namespace, "wait", "mdep/iris", "--for=jsonpath={.status.phase}=Ready",
        "--timeout=300s", check=False,
    )  # fmt: skip
    ready = time.time()
    if waited.returncode != 0:
        sys.exit(f"iris did not go Ready: {status(cluster, namespace)}")
    steps = breakdown(cluster, namespace, applied)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    return {**steps, "apply to Ready": ready - applied}


def status(cluster: kind.KindCluster, namespace: str) -> dict[str, Any]:
    found = get(cluster, namespace, "mdep", "iris")
    return dict(found.get("status") or {})


def breakdown(cluster: kind.KindCluster, namespace: str, applied: float) -> dict[str, float]:
    """Seconds from the apply to each step, from the objects' timestamps."""
    job = get(cluster, namespace, "jobs")["items"][0]
    trainer = get(cluster, namespace, "pods", "-l", f"job-name={job['metadata']['name']}")
    terminated = trainer["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
    deployment = get(cluster, namespace, "deployments")["items"][0]
    servers = get(cluster, namespace, "pods", "-l", "app.kubernetes.io/component=server")
    ready = max(
        condition["lastTransitionTime"]
        for pod in servers["items"]
        for condition in pod["status"]["conditions"]
        if condition["type"] == "Ready" and condition["status"] == "True"
    )
    moments = {
        "Job created": job["metadata"]["creationTimestamp"],
        "trainer started": terminated["startedAt"],
        "trainer finished": terminated["finishedAt"],
        "Deployment created": deployment["metadata"]["creationTimestamp"],
        "server pods ready": ready,
    }
    return {step: seconds_since(moment, applied) for step, moment in moments.items()}


def seconds_since(moment: str, applied: float) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp() - applied


def get(cluster: kind.KindCluster, namespace: str, *what: str) -> Any:
    return json.loads(cluster.kubectl("-n", namespace, "get", *what, "-o", "json").stdout)


if __name__ == "__main__":
    main()
