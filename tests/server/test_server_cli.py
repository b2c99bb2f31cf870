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
