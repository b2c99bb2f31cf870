"""Prometheus binaries for the monitoring tests, provisioned on first use (prometheus_bin.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import prometheus_bin
import pytest


def _provide(find: Callable[[], Path]) -> Path:
    try:
        return find()
    except prometheus_bin.PrometheusUnavailable as error:
        pytest.skip(f"NO PROMETHEUS BINARY, REAL-PROMETHEUS TESTS SKIPPED: {error}")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _provide(prometheus_bin.promtool)


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _provide(prometheus_bin.prometheus)
