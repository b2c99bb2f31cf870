"""Fixtures for the trainer's tests: specs that train in well under a second, CSV files, and a
local web server for CSV-from-URL (the tests use no other network)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

Spec = dict[str, Any]


@pytest.fixture(autouse=True, scope="session")
def _one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads spin while they wait, which makes it crawl on a
    busy machine; these models are tiny, one thread is plenty."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def iris(**overrides: Any) -> Spec:
    return {
        "dataset": {"builtin": "iris"},
        "estimator": "RandomForestClassifier",
        "hyperparameters": {"n_estimators": 5},
        "testSize": 0.25,
        "randomSeed": 7,
    } | overrides


@pytest.fixture
def iris_spec() -> Callable[..., Spec]:
    """A small random forest on iris; keyword arguments replace top-level keys."""
    return iris


@pytest.fixture
def output_root(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Writes text as a CSV file in a fresh directory; returns its path."""

    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / "csv" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return path

    return write


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback: (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def mixed_csv() -> str:
    """CSV text with numeric and categorical features, gaps in both, and a label that depends on
    them (so the model learns something)."""
    lines = ["size,colour,weight,shape,label"]
    colours = ["red", "green", "blue"]
    for i in range(80):
        size = round(1 + (i * 37 % 100) / 10, 1)
        colour = colours[i % 3]
        weight = "" if i % 10 == 3 else str(round(size * 2 + i % 7, 1))
        shape = "" if i % 13 == 5 else ("round" if i % 2 else "square")
        label = "big" if size > 5 or colour == "red" else "small"
        lines.append(f"{size},{colour},{weight},{shape},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def numeric_csv() -> str:
    """CSV text with numeric features only and a numeric target."""
    lines = ["x1,x2,y"]
    for i in range(60):
        x1, x2 = i % 11, (i * 7) % 13
        lines.append(f"{x1},{x2},{3 * x1 - x2 + (i % 3) / 10}")
    return "\n".join(lines) + "\n"
