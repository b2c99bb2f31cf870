"""`modelops-serve`: serves one artifact directory over HTTP and gRPC (the container's
entrypoint)."""

from __future__ import annotations

import argparse
import logging
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from .app import create_app
from .dataplane import DataPlane
from .metrics import Metrics
from .model import Model
from .settings import Settings

log = logging.getLogger("modelops_server")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelops-serve",
        description="Serve one trained model artifact. Every option also reads from its "
        "MODELOPS_* environment variable (e.g. MODELOPS_MODEL_DIR); the command line wins.",
    )
    parser.add_argument("--model-dir", type=Path, help="the artifact's version directory")
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="HTTP port to listen on (default 8080)")
    parser.add_argument(
        "--grpc-port", type=int, help="gRPC port to listen on (default 8081; 0 turns gRPC off)"
    )
    arguments = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("model_dir", arguments.model_dir),
            ("host", arguments.host),
            ("port", arguments.port),
            ("grpc_port", arguments.grpc_port),
        )
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        parser.error(f"bad settings: {exc}")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(settings)
    return 0


def app_from_environment() -> FastAPI:
    """The app for the MODELOPS_* environment: for `uvicorn --factory`, e.g. to try other
    worker models (docs/inference-server.md)."""
    return build_app(Settings())  # type: ignore[call-arg]


def build_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    dataplane = DataPlane(Model(settings), metrics, settings)
    return create_app(dataplane, metrics, settings, grpc=settings.grpc_port != 0)


def serve(settings: Settings) -> None:
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Per-request access lines would cost more than a prediction; /metrics counts requests.
        access_log=False,
    )


def drain(argv: Sequence[str] | None = None) -> int:
    """`modelops-drain`: the serving container's preStop hook. Asks the server in the same
    container, on loopback (the only address it drains for), to drain for `--seconds`, and
    returns when it has."""
    parser = argparse.ArgumentParser(prog="modelops-drain", description=drain.__doc__)
    parser.add_argument("--seconds", type=float, required=True, help="how long to drain")
    parser.add_argument("--port", type=int, help="the server's HTTP port (default 8080)")
    arguments = parser.parse_args(argv)
    # The container's own setting, as the server read it.
    port = arguments.port or int(
        os.environ.get("MODELOPS_PORT", Settings.model_fields["port"].default)
    )
    url = f"http://127.0.0.1:{port}/drain?seconds={arguments.seconds:g}"
    with urllib.request.urlopen(url, timeout=arguments.seconds + 10) as answer:
        print(answer.read().decode())
    return 0
