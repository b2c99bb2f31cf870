"""Benchmark: how long `modelops-serve` takes from start to ready, per way of loading a model.

    uv run python bench/server/start_to_ready.py [--rounds 5] [--estimator RandomForestClassifier]

Trains one model with the trainer (a 100-tree forest on iris by default), then starts the
server on it again and again, one process at a time, and times each from the process's start
to the first 200 of GET /v2/health/ready (polled every 10 ms):

- compiled: model.npz with the digest the operator passes (MODELOPS_COMPILED_SHA256): no
  unpickling, no scikit-learn;
- unpickled: model.joblib only (what a server does without a trusted digest for model.npz, and
  what every server did before model.npz existed): joblib, scikit-learn, then compiled in memory.

Prints the median and the range of each, and their ratio. Not a test: run it on request, on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from modelops_envtest.controlplane import free_port
from modelops_trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--estimator", default="RandomForestClassifier")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        spec = {
            "dataset": {"builtin": "iris"},
            "estimator": arguments.estimator,
            "hyperparameters": {"n_estimators": 100}
            if arguments.estimator == "RandomForestClassifier"
            else {},
            "testSize": 0.25,
            "randomSeed": 7,
        }
        summary = train(spec, Path(root), "iris")
        if "compiledSha256" not in summary:
            sys.exit(f"{arguments.estimator} has no compiled form: nothing to compare")
        ways = {
            "compiled (model.npz)": {"MODELOPS_COMPILED_SHA256": summary["compiledSha256"]},
            "unpickled (model.joblib)": {},
        }
        base = os.environ | {
            "MODELOPS_MODEL_DIR": summary["artifactPath"],
            "MODELOPS_MODEL_SHA256": summary["sha256"],
            "MODELOPS_LOG_LEVEL": "warning",
        }
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(arguments.rounds):
            for way, environment in ways.items():
                times[way].append(start_to_ready(base | environment))
    rows = {way: statistics.median(seconds) for way, seconds in times.items()}
    print(f"{arguments.estimator} on iris, {arguments.rounds} starts each")
    print("| load | median s | min s | max s |")
    print("| --- | ---: | ---: | ---: |")
    for way, seconds in times.items():
        print(f"| {way} | {rows[way]:.2f} | {min(seconds):.2f} | {max(seconds):.2f} |")
    compiled, unpickled = rows.values()
    print(f"\ncompiled starts {unpickled / compiled:.1f}x as fast")
    print(json.dumps({"seconds": times}))


def start_to_ready(environment: dict[str, str]) -> float:
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "modelops-serve"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(free_port()),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment)
    try:
        while True:
            if process.poll() is not None:
                sys.exit("the server exited before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1):
                    return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
