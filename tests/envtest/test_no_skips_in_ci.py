"""Where CI is set, a skip fails the run with its reason; elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SKIPPING = """
import pytest

def test_needs_a_binary():
    pytest.skip("NO PROMETHEUS BINARY: the build failed")
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skip_fails_where_ci_is_set(tmp_path: Path, ci: str) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "modelops_envtest.no_skips_in_ci", "-ra",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        env=os.environ | {"CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if ci:
        assert done.returncode == 1, done.stdout
        assert "1 failed" in done.stdout
        assert "skipped where CI is set" in done.stdout and "the build failed" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "1 skipped" in done.stdout and "NO PROMETHEUS BINARY" in done.stdout
