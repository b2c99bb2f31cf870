"""A real kind cluster for the module's tests: the node image built here (images/kind/build.sh),
the kind overlay installed (operator, Prometheus) with the project's images loaded."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from modelops_envtest import kind


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
    with kind.KindCluster(kind_tools) as created:
        print(f"kind cluster {created.name} created in {created.create_seconds:.0f}s")
        started = time.monotonic()
        created.install_platform()
        print(f"platform installed in {time.monotonic() - started:.0f}s")
        yield created
