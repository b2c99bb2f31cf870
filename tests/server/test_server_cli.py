"""`modelops-serve` as the container runs it: a real process on a loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Artifact


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def running(iris_forest: Artifact) -> Iterator[str]:
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "modelops-serve"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    environment = os.environ | {
        "MODELOPS_MODEL_DIR": str(iris_forest.directory),
        "MODELOPS_MODEL_SHA256": iris_forest.metadata["sha256"],
    }
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


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
