"""The lint step's judgement of the security scanners' findings: a finding no reviewed entry
covers fails it, an entry that covers nothing fails it, an entry without a reason is refused,
and the committed skip file is well-formed."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelops_envtest.security_scan import Finding, Skip, judged, load_skips

FINDINGS = [
    Finding("B101", "operator/src/modelops_operator/handlers.py:105", "assert"),
    Finding("CKV_K8S_157", "argocd:ClusterRole.default.argocd-application-controller", "bind"),
]


def test_a_finding_no_entry_covers_and_an_entry_covering_nothing_both_fail() -> None:
    skips = [
        Skip("B101", "operator/src/*", "invariants"),
        Skip("CKV_K8S_43", "*", "no digests here"),
    ]
    unlisted, stale = judged(FINDINGS, skips)
    assert unlisted == [FINDINGS[1]]
    assert stale == [skips[1]]


def test_checks_and_places_are_globs() -> None:
    skips = [
        Skip("B101", "*", "invariants"),
        Skip("CKV_K8S_15[5-8]", "argocd:ClusterRole.*", "upstream's role"),
    ]
    assert judged(FINDINGS, skips) == ([], [])


def test_an_entry_needs_a_reason(tmp_path: Path) -> None:
    skips = tmp_path / "skips.yaml"
    skips.write_text('checkov:\n  - {check: CKV_K8S_43, where: "*", reason: " "}\n')
    with pytest.raises(ValueError, match="needs check, where and a reason"):
        load_skips(skips)


def test_the_committed_skip_file_is_well_formed() -> None:
    skips = load_skips()
    assert skips["bandit"] and skips["checkov"]
