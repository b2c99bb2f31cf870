"""Grafana's dashboard sidecar loads every ConfigMap labelled grafana_dashboard, and fetches the
URL of any key ending ".url": the label is the operator's alone. Against a real apiserver, with
the monitoring base's ValidatingAdmissionPolicy: a tenant cannot make such a ConfigMap, nor label
one of theirs, nor edit the operator's; the operator's ServiceAccount can; an unlabelled
ConfigMap is nobody's business."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from deploy_manifests import built, kubectl_ok
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.waiting import wait_until
from modelops_operator.monitoring import grafana

pytestmark = pytest.mark.controlplane

OPERATOR = "system:serviceaccount:modelops-system:modelops-operator"
TENANT = "system:serviceaccount:team-a:deployer"


def guard(namespace: str) -> list[dict[str, Any]]:
    """The base's policy and binding, named for this test and bound to `namespace` alone: the
    apiserver is shared with other tests, whose operators run as the admin."""
    policy, binding = (
        doc
        for doc in built("deploy/base/monitoring")
        if doc["apiVersion"].startswith("admissionregistration.k8s.io/")
    )
    name = f"{policy['metadata']['name']}-{namespace}"
    only_here = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return [
        {**policy, "metadata": {"name": name}},
        {
            **binding,
            "metadata": {"name": name},
            "spec": {
                **binding["spec"],
                "policyName": name,
                "matchResources": {"namespaceSelector": only_here},
            },
        },
    ]


@pytest.fixture(scope="module")
def guarded(control_plane: ControlPlane) -> Iterator[str]:
    """The policy applied, a namespace to try it in; the tenant may write ConfigMaps there."""
    namespace = f"guard-{uuid.uuid4().hex[:6]}"
    kubectl_ok(control_plane, "create", "namespace", namespace)
    kubectl_ok(
        control_plane, "-n", namespace, "create", "rolebinding", "tenant-edits",
        "--clusterrole=edit", f"--user={TENANT}", f"--user={OPERATOR}",
    )  # fmt: skip
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": guard(namespace)})
    kubectl_ok(control_plane, "apply", "-f", "-", stdin=listed)
    # The apiserver loads a new policy within a second or so: until then, nothing is refused.
    wait_until(
        lambda: (
            "modelops operator" in make(control_plane, namespace, TENANT, "probe", dry_run=True)
        ),
        timeout=30,
        what="the policy to be in force",
    )
    yield namespace
    control_plane.kubectl("delete", "-f", "-", stdin=listed, check=False)
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def make(
    control_plane: ControlPlane,
    namespace: str,
    user: str | None,
    name: str,
    labels: dict[str, str] = grafana.SIDECAR_LABELS,
    *,
    dry_run: bool = False,
) -> str:
    """Create a ConfigMap as `user` (None: the admin): "" if the apiserver took it, else its
    refusal."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"models.json.url": "http://169.254.169.254/latest/meta-data/"},
    }
    done = control_plane.kubectl(
        "create", *([f"--as={user}"] if user else []), "-f", "-",
        *(["--dry-run=server"] if dry_run else []),
        stdin=json.dumps(configmap), check=False,
    )  # fmt: skip
    return "" if done.returncode == 0 else done.stderr


def test_only_the_operator_may_make_a_configmap_grafana_loads(
    control_plane: ControlPlane, guarded: str
) -> None:
    refusal = make(control_plane, guarded, TENANT, "planted")
    assert "the label grafana_dashboard belongs to the modelops operator" in refusal, refusal
    assert TENANT in refusal
    assert make(control_plane, guarded, OPERATOR, "iris-dashboard") == ""
    # The cluster's admins (system:masters), whom no authorization stops anyway.
    assert make(control_plane, guarded, None, "the-admins") == ""
    assert make(control_plane, guarded, TENANT, "plain", {"app": "mine"}) == ""


def test_a_tenant_can_neither_label_a_configmap_nor_edit_the_operators(
    control_plane: ControlPlane, guarded: str
) -> None:
    assert make(control_plane, guarded, TENANT, "innocent", {"app": "mine"}) == ""
    labelled = control_plane.kubectl(
        "-n", guarded, "label", "configmap", "innocent", "grafana_dashboard=1", f"--as={TENANT}",
        check=False,
    )  # fmt: skip
    assert labelled.returncode != 0 and "modelops operator" in labelled.stderr, labelled.stderr

    assert make(control_plane, guarded, OPERATOR, "wine-dashboard") == ""
    edited = control_plane.kubectl(
        "-n", guarded, "patch", "configmap", "wine-dashboard", f"--as={TENANT}", "--type=merge",
        "-p", json.dumps({"data": {"other.json.url": "http://10.0.0.1/"}}), check=False,
    )  # fmt: skip
    assert edited.returncode != 0 and "modelops operator" in edited.stderr, edited.stderr
    # Taking the label off is no threat, and lets the owner of the namespace clean up.
    unlabelled = control_plane.kubectl(
        "-n", guarded, "label", "configmap", "wine-dashboard", "grafana_dashboard-",
        f"--as={TENANT}", check=False,
    )  # fmt: skip
    assert unlabelled.returncode == 0, unlabelled.stderr
