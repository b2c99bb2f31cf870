"""The image tests need a Docker engine and build three images (minutes on a cold machine), so
they run only when asked for: `pytest -m images` (or MODELOPS_IMAGE_TESTS=1); otherwise they are
skipped with that hint. `images/smoke.sh` runs them."""

from __future__ import annotations

import os
import re

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    asked = bool(re.search(r"(?<!not )\bimages\b", markexpr)) or os.environ.get(
        "MODELOPS_IMAGE_TESTS"
    ) in ("1", "true", "yes")
    if asked:
        return
    skip = pytest.mark.skip(reason="image tests run with `pytest -m images` (images/smoke.sh)")
    for item in items:
        if "images" in item.keywords:
            item.add_marker(skip)
