"""Benchmark: what an explanation costs beside the prediction it explains, on the iris sample's
forest (100 trees, max_depth 5), one row and 100 rows.

    uv run python bench/server/explain.py [--requests 2000]

Trains the sample's model with the trainer, then prints side by side:

- in the kernel: `predict` against `explain` of the compiled forest (the C walk against the C
  TreeSHAP), and the shap library's TreeExplainer on the same rows, the peer whose numbers the
  server's are held to (tests/server/test_server_explain.py);
- over HTTP: the median latency of POST /predict against POST /explain to a `modelops-serve`
  process, one request at a time on one kept-alive connection;
- the model-agnostic path, on the iris SVC (probability: true) scikit-learn serves: its
  predict_proba against its explanation (every coalition of 4 features, over the 50 training
  rows the artifact keeps), and shap's ExactExplainer on the same rows.

Not a test: run it on request, on a quiet machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import shap
from modelops_envtest.controlplane import free_port
from modelops_server import artifact, compiled, runtime
from modelops_trainer import train
from sklearn.datasets import load_iris

SPEC = {
    "dataset": {"builtin": "iris"},
    "estimator": "RandomForestClassifier",
    "hyperparameters": {"n_estimators": 100, "max_depth": 5},
    "testSize": 0.25,
    "randomSeed": 42,
}
ROWS = (1, 100)


def per_call_us(call: Callable[[], object], seconds: float = 1.0) -> float:
    """The fastest of five rounds, per call, in microseconds."""
    number = max(1, int(seconds / max(timeit.timeit(call, number=1), 1e-7) / 5))
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def kernel(artifact: Path, rows: np.ndarray) -> tuple[float, float, float]:
    forest = compiled.from_bytes((artifact / "model.npz").read_bytes()).predictor
    explainer = shap.TreeExplainer(joblib.load(artifact / "model.joblib"))
    return (
        per_call_us(lambda: forest.predict(rows)),
        per_call_us(lambda: forest.explain(rows, None)),
        per_call_us(lambda: explainer.shap_values(rows, check_additivity=False)),
    )


def agnostic(root: Path, rows: np.ndarray) -> tuple[float, float, float]:
    spec = SPEC | {"estimator": "SVC", "hyperparameters": {"probability": True}}
    directory = Path(train(spec, root / "svc", "iris-svc")["artifactPath"])
    metadata = json.loads((directory / "metadata.json").read_text())
    features = tuple(artifact.feature(raw) for raw in metadata["features"])
    background = artifact.background_rows(metadata["background"], features)
    assert background is not None
    svc = joblib.load(directory / "model.joblib")
    chosen = runtime.select(svc, True, compile_models=True)
    exact = shap.explainers.Exact(
        svc.predict_proba, shap.maskers.Independent(background, max_samples=len(background))
    )
    return (
        per_call_us(lambda: chosen.predictor.predict(rows)),
        per_call_us(lambda: chosen.predictor.explain(rows, background)),
        per_call_us(lambda: exact(rows), seconds=3.0),
    )


def over_http(port: int, path: str, rows: np.ndarray, requests: int) -> float:
    """The median milliseconds of `requests` POSTs, one after another on one connection."""
    body = json.dumps({"instances": rows.tolist()})
    connection = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {answer[:200]!r}")
    connection.close()
    return statistics.median(times) * 1e3


def serve(artifact: Path, port: int) -> subprocess.Popen[bytes]:
    metadata = json.loads((artifact / "metadata.json").read_text())
    environment = os.environ | {
        "MODELOPS_MODEL_DIR": str(artifact),
        "MODELOPS_MODEL_SHA256": metadata["sha256"],
        "MODELOPS_COMPILED_SHA256": metadata["compiled"]["sha256"],
        "MODELOPS_PORT": str(port),
        "MODELOPS_GRPC_PORT": str(free_port()),
    }
    command = [str(Path(sys.executable).parent / "modelops-serve"), "--host", "127.0.0.1"]
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server was not ready within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    arguments = parser.parse_args()
    data = load_iris().data
    with tempfile.TemporaryDirectory() as root:
        artifact = Path(train(SPEC, Path(root), "iris")["artifactPath"])
        port = free_port()
        server = serve(artifact, port)
        try:
            wait_ready(port)
            print(
                "rows | kernel: predict, explain (ratio), shap TreeExplainer | HTTP median: "
                "/predict, /explain (ratio)"
            )
            for count in ROWS:
                rows = data[:count]
                predict, explain, peer = kernel(artifact, rows)
                http_predict = over_http(port, "/predict", rows, arguments.requests)
                http_explain = over_http(port, "/explain", rows, arguments.requests)
                print(
                    f"{count:>4} | {predict:8.1f} us, {explain:8.1f} us ({explain / predict:4.1f}x), "
                    f"{peer:9.1f} us | {http_predict:6.3f} ms, {http_explain:6.3f} ms "
                    f"({http_explain / http_predict:3.1f}x)"
                )
            predict, explain, peer = agnostic(Path(root), data[:1])
            print(
                f"SVC, 1 row | predict_proba {predict:8.1f} us, explain {explain:9.1f} us "
                f"({explain / predict:5.1f}x), shap ExactExplainer {peer:10.1f} us"
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
