"""Every built manifest is accepted by a real kube-apiserver: a server-side dry-run apply with
strict field validation, after the CRDs and namespaces are created for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_manifests import KUSTOMIZATIONS, build, documents, dry_run_apply, kubectl_ok
from modelops_envtest.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=str)
def test_server_side_dry_run_accepts_the_build(
    control_plane: ControlPlane, modelops_crds: None, path: Path
) -> None:
    manifests = build(path)
    applied = dry_run_apply(control_plane, "-", stdin=manifests)
    items = applied["items"] if applied.get("kind") == "List" else [applied]
    expected = {(doc["kind"], doc["metadata"]["name"]) for doc in documents(manifests)}
    assert {(item["kind"], item["metadata"]["name"]) for item in items} == expected


def test_server_side_apply_dry_run_accepts_the_kind_overlay(
    control_plane: ControlPlane, modelops_crds: None
) -> None:
    """The kind overlay as docs/gitops.md applies it: server-side."""
    kubectl_ok(
        control_plane,
        "apply",
        "--server-side",
        "--field-manager=modelops-deploy-test",
        "--dry-run=server",
        "-f",
        "-",
        stdin=build(Path("deploy/overlays/kind")),
    )
