"""A namespaced install: the chart with watchNamespaces grants the operator its writes by a Role in
each namespace it serves, and cluster-wide only reads of the CRDs and of namespaces. Asked of a
real apiserver, and then the operator itself, under its ServiceAccount's token, serves a model in
a watched namespace, leaves one elsewhere alone, and is refused nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from deploy_manifests import (
    SAMPLES,
    can,
    container,
    env,
    find,
    kubectl_ok,
    rendered,
    serve_model,
    service_account_kubeconfig,
)
from modelops_envtest import release
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess

pytestmark = pytest.mark.controlplane

RELEASE_NAMESPACE = "modelops-namespaced"
OPERATOR = f"system:serviceaccount:{RELEASE_NAMESPACE}:modelops-operator"
# What a model's reconcile writes, by resource.
WRITES = (
    ("create", "jobs"),
    ("create", "deployments"),
    ("patch", "deployments"),
    ("create", "services"),
    ("create", "persistentvolumeclaims"),
    ("delete", "horizontalpodautoscalers"),
    ("delete", "poddisruptionbudgets"),
    ("patch", "networkpolicies"),
    ("create", "configmaps"),
    ("patch", "modeldeployments.modelops.dev"),
    ("patch", "modeldeployments.modelops.dev/status"),
    ("create", "kopfpeerings.kopf.dev"),
    ("create", "events"),
)


@dataclass(frozen=True)
class Install:
    """The namespaced chart applied (all but the operator's Deployment, run here as a process):
    the namespace it serves and one it does not."""

    objects: list[dict[str, Any]]
    watched: str
    other: str


def own_cluster_names(obj: dict[str, Any], suffix: str) -> dict[str, Any]:
    """`obj`, its name suffixed if it has no namespace (and a binding's role's too): the
    apiserver is shared with the other tests, whose ClusterRoles have the chart's names."""
    if obj["kind"] == "ClusterRole":
        return {
            **obj,
            "metadata": {**obj["metadata"], "name": f"{obj['metadata']['name']}-{suffix}"},
        }
    if obj["kind"] == "ClusterRoleBinding":
        return {
            **obj,
            "metadata": {**obj["metadata"], "name": f"{obj['metadata']['name']}-{suffix}"},
            "roleRef": {**obj["roleRef"], "name": f"{obj['roleRef']['name']}-{suffix}"},
        }
    return obj


@pytest.fixture(scope="module")
def install(
    control_plane: ControlPlane,
    modelops_crds: None,
    helm: release.Helm,
    released: tuple[Path, Path],
) -> Iterator[Install]:
    suffix = uuid.uuid4().hex[:6]
    watched, other = f"served-{suffix}", f"other-{suffix}"
    for namespace in (RELEASE_NAMESPACE, watched, other):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    objects = rendered(
        helm, released[1], f"watchNamespaces={json.dumps([watched])}", namespace=RELEASE_NAMESPACE
    )
    applied = [own_cluster_names(obj, suffix) for obj in objects if obj["kind"] != "Deployment"]
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": applied})
    kubectl_ok(control_plane, "apply", "-f", "-", stdin=listed)
    yield Install(objects, watched, other)
    control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", stdin=listed, check=False)
    for namespace in (watched, other):
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_operator_writes_only_in_the_namespaces_it_serves(
    control_plane: ControlPlane, install: Install
) -> None:
    for verb, resource in WRITES:
        assert can(control_plane, OPERATOR, verb, resource, "-n", install.watched), resource
        for elsewhere in (install.other, "kube-system", "default"):
            assert not can(control_plane, OPERATOR, verb, resource, "-n", elsewhere), (
                verb,
                resource,
                elsewhere,
            )
    assert not can(control_plane, OPERATOR, "list", "pods", "--all-namespaces")
    assert not can(control_plane, OPERATOR, "create", "clusterkopfpeerings.kopf.dev")
    cluster_wide = [
        rule
        for obj in install.objects
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"].startswith("modelops-operator")
        for rule in obj["rules"]
    ]
    assert {verb for rule in cluster_wide for verb in rule["verbs"]} <= {"get", "list", "watch"}
    assert can(control_plane, OPERATOR, "watch", "customresourcedefinitions")


def test_the_operator_serves_a_watched_namespace_and_leaves_the_others_alone(
    control_plane: ControlPlane,
    api_client: kubernetes.client.ApiClient,
    install: Install,
    tmp_path: Path,
    operator: OperatorProcess,
) -> None:
    settings = env(container(find(install.objects, "Deployment", "modelops-operator"), "operator"))
    settings.pop("MODELOPS_HEALTH_PORT", None)
    assert settings["MODELOPS_NAMESPACES"] == install.watched
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path, RELEASE_NAMESPACE)
    namespaced = OperatorProcess(control_plane, KUBECONFIG=str(kubeconfig), **settings)
    manifest = yaml.safe_load((SAMPLES / "iris.yaml").read_text())
    # The session's operator, of every namespace, would serve the other namespace's model.
    with operator.paused():
        serve_and_delete(control_plane, api_client, install, tmp_path, namespaced, manifest)
    log = namespaced.log()
    for refusal in ("Forbidden", "(403)"):
        assert refusal not in log, (
            f"the operator was refused something:\n{namespaced.log_tail(200)}"
        )


def serve_and_delete(
    control_plane: ControlPlane,
    api_client: kubernetes.client.ApiClient,
    install: Install,
    tmp_path: Path,
    operator: OperatorProcess,
    manifest: dict[str, Any],
) -> None:
    """The model served in the watched namespace, then deleted; the other one left alone."""
    operator.start()
    try:
        kubectl_ok(
            control_plane, "-n", install.other, "apply", "-f", "-", stdin=json.dumps(manifest)
        )
        serve_model(
            control_plane, Kubelet(api_client), install.watched, manifest, tmp_path, operator
        )
        served = json.loads(
            kubectl_ok(control_plane, "-n", install.watched, "get", "mdep", "iris", "-o", "json")
        )
        monitored = next(c for c in served["status"]["conditions"] if c["type"] == "Monitored")
        assert monitored["status"] == "True", monitored["message"]
        unserved = json.loads(
            kubectl_ok(control_plane, "-n", install.other, "get", "mdep", "iris", "-o", "json")
        )
        assert "status" not in unserved, unserved["status"]
        assert "finalizers" not in unserved["metadata"]
        kubectl_ok(control_plane, "-n", install.watched, "delete", "mdep", "iris", "--timeout=60s")
    finally:
        operator.stop()
