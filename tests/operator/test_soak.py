"""A short soak (modelops_envtest.soak): random valid changes to a few models, the operator
killed now and then, and every invariant holding after each burst. bench/operator/soak.py runs
the long one."""

from __future__ import annotations

import pytest
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.soak import soak

pytestmark = [pytest.mark.controlplane, pytest.mark.timeout(600)]


def test_three_minutes_of_random_changes_and_operator_kills_break_no_invariant() -> None:
    # A control plane of its own: the soak's operator must be the only one.
    with ControlPlane() as control_plane:
        report = soak(control_plane, models=6, minutes=3, seed=7)
    print(report.summary_line())
    assert report.rounds >= 3, report.summary_line()
    assert sum(report.changes.values()) >= 10, report.summary_line()
    assert report.operator_kills >= 1, report.summary_line()
    assert not report.violations, "\n".join(map(str, report.violations))
