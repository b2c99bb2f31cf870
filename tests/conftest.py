"""Fixtures shared by the whole suite: one real control plane per test session, with the CRDs and
the real operator; one kind cluster; and the opt-in for the tests that need Docker."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import kubernetes
import pytest
from modelops_envtest import kind, mlflow_server, object_storage, prometheus_tools
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.operator import OperatorProcess, install_prerequisites

# Tests that build images and clusters with Docker (minutes on a cold machine) run when asked:
# `pytest -m <marker>` or the variable set (`make test` sets both); otherwise they skip saying so.
DOCKER_MARKERS = {
    "images": ("MODELOPS_IMAGE_TESTS", "images/smoke.sh"),
    "kind": ("MODELOPS_KIND_TESTS", "make test"),
}


# `make test` runs the suite on two workers (pytest-xdist, `--dist loadgroup`), a group at a time:
# the tests on the shared kind cluster together (one cluster for the session), each module that
# makes clusters of its own, and the rest a module at a time (a module's fixtures are set up
# once). A worker that is done takes the next group in this order: the shared cluster's group,
# the longest, on one worker, while the other makes the clusters of their own (at most two
# clusters are made at a time), then both share the rest, whose small groups even out the end.
SHARED_CLUSTER_GROUP = "shared-kind-cluster"
OWN_CLUSTERS_GROUP = "own-kind-clusters"


def _worker_group(item: pytest.Item) -> str:
    module = item.nodeid.split("::")[0]
    if "own_clusters" in item.keywords:
        return f"{OWN_CLUSTERS_GROUP}:{module}"
    if "kind" in item.keywords:
        return SHARED_CLUSTER_GROUP
    return module


def _worker_order(item: pytest.Item) -> int:
    group = _worker_group(item)
    if group == SHARED_CLUSTER_GROUP:
        return 0
    return 1 if group.startswith(OWN_CLUSTERS_GROUP) else 2


# Around the other plugins': xdist reads the groups, and the order is the last word (the
# Makefile turns off xdist's own, by size).
@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_worker_group(item)))
    _skip_docker_tests_unless_asked(config, items)
    yield
    if getattr(config.option, "loadgroup", False) and any("@" not in i.nodeid for i in items):
        # xdist marks a grouped test's id; where it cannot (pytest-xdist#1386), the groups
        # would scatter over both workers, each making a kind cluster of its own.
        raise pytest.UsageError("pytest-xdist did not take the test groups: see pyproject.toml")
    items.sort(key=_worker_order)


def _skip_docker_tests_unless_asked(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    for marker, (variable, runner) in DOCKER_MARKERS.items():
        asked = bool(re.search(rf"(?<!not )\b{marker}\b", markexpr)) or os.environ.get(
            variable
        ) in ("1", "true", "yes")
        if asked:
            continue
        skip = pytest.mark.skip(
            reason=f"{marker} tests run with `pytest -m {marker}`, {variable}=1 or {runner}"
        )
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane() as plane:
        yield plane


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> kubernetes.client.ApiClient:
    return control_plane.api_client()


@pytest.fixture(scope="session")
def crds_installed(control_plane: ControlPlane) -> None:
    install_prerequisites(control_plane)


@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, crds_installed: None) -> Iterator[OperatorProcess]:
    running = OperatorProcess(control_plane).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object_storage.ObjectStorage]:
    """A real S3-compatible server (versitygw) on loopback, for the whole session."""
    with object_storage.running() as storage:
        yield storage


@pytest.fixture(scope="session")
def mlflow_tracking() -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, serving its artifacts) on loopback, for
    the whole session: its URL."""
    with mlflow_server.running() as url:
        yield url


@pytest.fixture
def s3(
    s3_server: object_storage.ObjectStorage, monkeypatch: pytest.MonkeyPatch
) -> object_storage.ObjectStorage:
    """The S3 server with the standard AWS variables pointing at it (and no profile of the
    machine's own), and a fresh bucket named after the test."""
    for variable, value in s3_server.environment().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    s3_server.create_bucket("models")
    return s3_server


@pytest.fixture(scope="session")
def kind_tools() -> kind.KindTools:
    started = time.monotonic()
    try:
        tools = kind.build()
    except kind.KindUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kind tests, but: {error}")
        pytest.skip(f"NO DOCKER, KIND TESTS SKIPPED: {error}")
    print(f"kind node image {tools.node_image} ready in {time.monotonic() - started:.0f}s")
    return tools


@pytest.fixture(scope="session")
def cluster(kind_tools: kind.KindTools) -> Iterator[kind.KindCluster]:
    """A real cluster with the kind overlay installed (operator, Prometheus), the project's
    images loaded."""
    with kind.KindCluster(kind_tools) as created:
        print(f"kind cluster {created.name} created in {created.create_seconds:.0f}s")
        started = time.monotonic()
        created.install_platform()
        print(f"platform installed in {time.monotonic() - started:.0f}s")
        yield created


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


@pytest.fixture(scope="session")
def prometheus_release() -> Path:
    """The Prometheus version deploy/base runs."""
    return _provide(prometheus_tools.prometheus_release)
