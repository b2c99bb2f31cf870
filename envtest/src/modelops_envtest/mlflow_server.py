"""A real MLflow tracking server for the tests: `mlflow server` (from PyPI, the project's dev
dependencies) with a SQLite backend and its artifacts in a folder it serves itself, so clients
need only its URL (MLFLOW_TRACKING_URI): runs, metrics, the model registry and the models'
files all go through it."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelops_envtest.controlplane import free_port
from modelops_envtest.processes import running_server


@contextlib.contextmanager
def running(host: str = "127.0.0.1") -> Iterator[str]:
    """An MLflow server on a free port of `host`, over a throwaway folder; its URL."""
    with tempfile.TemporaryDirectory(prefix="modelops-mlflow-") as workdir:
        port = free_port(host)
        url = f"http://{host}:{port}"
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{workdir}/mlflow.db",
            "--artifacts-destination",
            f"{workdir}/artifacts",
        ]
        with running_server(
            "mlflow server",
            command,
            f"{url}/health",
            Path(workdir) / "mlflow.log",
            # Its own telemetry would try to reach the internet.
            {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"},
            timeout=120,
        ):
            yield url
