"""A pytest plugin (pyproject's addopts load it): where CI is set, a skipped test fails, saying
why it skipped. CI runs every test; a build that failed must not turn into tests that quietly
did not run. Elsewhere a skip stays a skip, and `-ra` lists each with its reason at the end."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped where CI is set, and CI runs every test: {reason}"
