"""Fixtures for the inference server's tests: artifacts made by the real trainer (one per spec,
shared by the session) and in-process servers over them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from modelops_envtest.controlplane import free_port
from modelops_server.app import create_app
from modelops_server.dataplane import DataPlane
from modelops_server.metrics import Metrics
from modelops_server.model import Model
from modelops_server.settings import Settings
from modelops_trainer import train
from threadpoolctl import threadpool_limits

# Small, so the whole family set trains in seconds; big enough to have real trees.
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "RandomForestClassifier": {"n_estimators": 20},
    "ExtraTreesClassifier": {"n_estimators": 20},
    "GradientBoostingClassifier": {"n_estimators": 20},
    "HistGradientBoostingClassifier": {"max_iter": 20},
    "RandomForestRegressor": {"n_estimators": 20},
    "ExtraTreesRegressor": {"n_estimators": 20},
    "GradientBoostingRegressor": {"n_estimators": 20},
    "HistGradientBoostingRegressor": {"max_iter": 20},
    "LogisticRegression": {"max_iter": 1000},
}


@dataclass(frozen=True)
class Artifact:
    directory: Path
    metadata: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.metadata["features"]]

    def copy_to(self, directory: Path) -> Artifact:
        """A copy to tamper with."""
        shutil.copytree(self.directory, directory)
        return Artifact(directory, self.metadata)


@pytest.fixture(autouse=True, scope="session")
def _one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads spin while they wait; tiny models need one."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Artifact]:
    """trained(estimator, dataset="iris") or trained(estimator, csv=path): the trainer's artifact
    for that spec, trained once per session."""
    root = tmp_path_factory.mktemp("artifacts")
    made: dict[str, Artifact] = {}

    def make(
        estimator: str, dataset: str = "iris", csv: Path | None = None, **hyperparameters: Any
    ) -> Artifact:
        source = (
            {"csv": {"path": str(csv), "targetColumn": "label"}} if csv else {"builtin": dataset}
        )
        spec = {
            "dataset": source,
            "estimator": estimator,
            "hyperparameters": HYPERPARAMETERS.get(estimator, {}) | hyperparameters,
            "testSize": 0.25,
            "randomSeed": 7,
        }
        key = json.dumps(spec, sort_keys=True)
        if key not in made:
            name = f"{csv.stem if csv else dataset}-{estimator.lower()}".replace("_", "-")
            directory = Path(train(spec, root, name)["artifactPath"])
            made[key] = Artifact(directory, json.loads((directory / "metadata.json").read_text()))
        return made[key]

    return make


@pytest.fixture(scope="session")
def iris_forest(trained: Callable[..., Artifact]) -> Artifact:
    return trained("RandomForestClassifier")


@pytest.fixture(scope="session")
def fruit_forest(
    trained: Callable[..., Artifact], tmp_path_factory: pytest.TempPathFactory
) -> Artifact:
    """A forest over a numeric and a categorical feature (size, colour): a saved Pipeline."""
    csv = tmp_path_factory.mktemp("csv") / "fruit.csv"
    lines = ["size,colour,label"] + [
        f"{1 + i % 9},{('red', 'green', 'blue')[i % 3]},{'big' if i % 9 > 4 or i % 3 == 0 else 'small'}"
        for i in range(60)
    ]
    csv.write_text("\n".join(lines) + "\n")
    return trained("RandomForestClassifier", csv=csv)


@dataclass
class Server:
    client: TestClient
    dataplane: DataPlane
    artifact: Artifact

    def predict(self, body: Any) -> Any:
        return self.client.post("/predict", json=body)

    def infer(self, body: Any, path: str | None = None) -> Any:
        return self.client.post(path or f"/v2/models/{self.artifact.name}/infer", json=body)


def build_app(settings: Settings, load_on_startup: bool = False) -> tuple[FastAPI, DataPlane]:
    """The app and its data plane; the model loaded before returning unless `load_on_startup`."""
    metrics = Metrics()
    dataplane = DataPlane(Model(settings), metrics, settings)
    if not load_on_startup:
        dataplane.load()
    app = create_app(dataplane, metrics, settings, load_on_startup=load_on_startup)
    return app, dataplane


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """serve(artifact, **settings): an in-process server with the model loaded."""
    clients: list[TestClient] = []

    def start(artifact: Artifact, **settings: Any) -> Server:
        app, dataplane = build_app(Settings(model_dir=artifact.directory, **settings))
        # A server error must fail the test as a 500 response, not as a raised exception.
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return Server(client, dataplane, artifact)

    yield start
    for client in clients:
        client.close()


@pytest.fixture
def iris_server(serve: Callable[..., Server], iris_forest: Artifact) -> Server:
    return serve(iris_forest)


@dataclass(frozen=True)
class Process:
    """A running `modelops-serve`: its base URL, its gRPC address and its process id."""

    url: str
    grpc: str
    pid: int


@pytest.fixture
def serve_process() -> Iterator[Callable[..., Process]]:
    """serve_process(artifact, **environment): `modelops-serve` as the container runs it (with
    the digests the operator passes, and `environment` besides), a real process on loopback
    ports, once it is ready."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(artifact: Artifact, **settings: str) -> Process:
        port, grpc_port = free_port(), free_port()
        command = [
            str(Path(sys.executable).parent / "modelops-serve"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
        ]
        compiled = artifact.metadata.get("compiled")
        environment = os.environ | {
            "MODELOPS_MODEL_DIR": str(artifact.directory),
            "MODELOPS_MODEL_SHA256": artifact.metadata["sha256"],
            **({"MODELOPS_COMPILED_SHA256": compiled["sha256"]} if compiled else {}),
            **settings,
        }
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2):
                    return Process(url, f"127.0.0.1:{grpc_port}", process.pid)
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.2)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)
