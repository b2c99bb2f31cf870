"""Fixtures shared by the whole suite: one real control plane per test session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest
from modelops_envtest import prometheus_tools
from modelops_envtest.controlplane import ControlPlane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> kubernetes.client.ApiClient:
    return control_plane.api_client()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _provide(find: Callable[[], Path]) -> Path:
    try:
        return find()
    except prometheus_tools.PrometheusUnavailable as error:
        pytest.skip(f"NO PROMETHEUS BINARY, REAL-PROMETHEUS TESTS SKIPPED: {error}")


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool with Kubernetes discovery (see modelops_envtest.prometheus_tools)."""
    return _provide(prometheus_tools.promtool)


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _provide(prometheus_tools.prometheus)
