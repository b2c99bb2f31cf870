"""`modelops-serve` as the container runs it: a real process on a loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Artifact, Process


@pytest.fixture
def running(serve_process: Callable[[Artifact], Process], iris_forest: Artifact) -> str:
    return serve_process(iris_forest).url


def test_modelops_serve_serves_the_model_dir(running: str) -> None:
    request = urllib.request.Request(
        f"{running}/predict",
        data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["predictions"] == ["setosa"]
    with urllib.request.urlopen(f"{running}/metrics", timeout=10) as response:
        assert b"modelops_model_info{" in response.read()


def test_modelops_serve_needs_a_model_dir() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "modelops-serve")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    assert "model_dir" in result.stderr


@pytest.mark.parametrize("estimator", ["RandomForestClassifier", "LogisticRegression"])
def test_a_compiled_model_is_served_without_scikit_learn_or_unpickling(
    serve_process: Callable[[Artifact], Process],
    trained: Callable[..., Artifact],
    estimator: str,
) -> None:
    """The server as the operator starts it, on a model the trainer compiled: model.npz, read
    with allow_pickle=False; neither scikit-learn nor joblib is ever loaded into the process."""
    served = serve_process(trained(estimator))

    with urllib.request.urlopen(f"{served.url}/card", timeout=10) as response:
        runtime = json.loads(response.read())["runtime"]
    libraries = Path(f"/proc/{served.pid}/maps").read_text()
    environment = Path(f"/proc/{served.pid}/environ").read_bytes()

    assert runtime["name"] == "compiled"
    assert "/sklearn/" not in libraries, "scikit-learn's extensions were loaded"
    assert b"MODELOPS_COMPILED_SHA256=" in environment
