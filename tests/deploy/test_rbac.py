"""The operator's RBAC is least privilege, and enough: no wildcards and no secrets, checked
statically; what it grants and denies, asked of a real apiserver; and the operator itself, run
under its ServiceAccount's token, taking a model from training to Ready (its scrape job in its
scrape config file, its dashboard beside it), through a spec change that removes its
autoscaler, to deletion."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from deploy_manifests import (
    MONITORING_NAMESPACE,
    ROOT,
    SAMPLES,
    built,
    can,
    container,
    documents,
    env,
    find,
    kubectl_ok,
    run,
    serve_model,
    service_account_kubeconfig,
)
from modelops_envtest import upstream_crds
from modelops_envtest.controlplane import ControlPlane, kubectl_binary
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess
from modelops_envtest.waiting import wait_until
from modelops_operator import constants, registration
from modelops_operator.monitoring import grafana, prometheus
from modelops_operator.settings import Settings

BASE = Path("deploy/base")
OPERATOR = f"system:serviceaccount:{MONITORING_NAMESPACE}:modelops-operator"
PROMETHEUS = f"system:serviceaccount:{MONITORING_NAMESPACE}:prometheus"
GRAFANA = f"system:serviceaccount:{MONITORING_NAMESPACE}:grafana"
# The scrape config files, as the base configures the operator (test_kustomize.py checks that).
SCRAPE_CONFIG_MAPS = registration.scrape_config_maps(Settings())
SECRET_LIKE = {"secrets", "*"}


def roles() -> list[dict[str, Any]]:
    return [doc for doc in built(BASE) if doc["kind"] in ("ClusterRole", "Role")]


def operator_rules() -> list[dict[str, Any]]:
    docs = built(BASE)
    bound = {
        doc["roleRef"]["name"]
        for doc in docs
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(subject["name"] == "modelops-operator" for subject in doc["subjects"])
    }
    assert bound == {"modelops-operator", "modelops-operator-monitoring"}
    return [rule for doc in roles() if doc["metadata"]["name"] in bound for rule in doc["rules"]]


def test_operator_roles_grant_no_wildcards() -> None:
    for rule in operator_rules():
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), rule
        assert not rule.get("nonResourceURLs"), rule


def test_no_role_in_the_platform_touches_secrets() -> None:
    for role in roles():
        for rule in role["rules"]:
            assert not SECRET_LIKE & set(rule["resources"]), (role["metadata"]["name"], rule)
            assert "*" not in rule["verbs"], (role["metadata"]["name"], rule)


def test_operator_overwrites_only_the_scrape_config_files() -> None:
    """ConfigMaps anywhere: each model's dashboard (applied, deleted, watched) and reading,
    watching and creating the scrape config files. Overwritten (update, the scrape files'
    read-modify-write) only by name, in the monitoring namespace."""
    cluster_role = find(built(BASE), "ClusterRole", "modelops-operator")
    [everywhere] = [rule for rule in cluster_role["rules"] if "configmaps" in rule["resources"]]
    assert everywhere == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    }
    role = find(built(BASE), "Role", "modelops-operator-monitoring")
    assert role["metadata"]["namespace"] == MONITORING_NAMESPACE
    [named] = role["rules"]
    assert named["resources"] == ["configmaps"] and named["verbs"] == ["update"]
    assert sorted(named["resourceNames"]) == sorted(name for _, name in SCRAPE_CONFIG_MAPS)


def test_user_roles_aggregate_into_the_builtin_roles() -> None:
    docs = built(BASE)
    editor = find(docs, "ClusterRole", "modelops-modeldeployment-editor")
    viewer = find(docs, "ClusterRole", "modelops-modeldeployment-viewer")
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert {verb for rule in viewer["rules"] for verb in rule["verbs"]} == {"get", "list", "watch"}
    assert "create" in editor["rules"][0]["verbs"]


# -- against the apiserver -------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(control_plane: ControlPlane, modelops_crds: None) -> Iterator[list[dict[str, Any]]]:
    """The base applied for real (its CRDs are already there); removed afterwards, except the
    namespace and the peering object, which other tests share. Not its admission policy, which
    would refuse other tests' operators (run as the admin) their dashboards while this module
    runs: test_dashboard_guard.py tries it in a namespace of its own."""
    docs = [
        doc
        for doc in built(BASE)
        if doc["kind"] != "CustomResourceDefinition"
        and not doc["apiVersion"].startswith("admissionregistration.k8s.io/")
    ]
    listed = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    kubectl_ok(control_plane, "apply", "-f", "-", stdin=listed)
    yield docs
    removable = [doc for doc in docs if doc["kind"] not in ("Namespace", "ClusterKopfPeering")]
    control_plane.kubectl(
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": removable}),
        check=False,
    )


ALLOWED = [
    ("watch", "modeldeployments.modelops.dev", "--all-namespaces"),
    ("patch", "modeldeployments.modelops.dev", "-n", "any"),
    ("patch", "modeldeployments.modelops.dev", "--subresource=status", "-n", "any"),
    ("update", "modeldeployments.modelops.dev", "--subresource=finalizers", "-n", "any"),
    ("create", "jobs.batch", "-n", "any"),
    ("watch", "jobs.batch", "--all-namespaces"),
    ("delete", "jobs.batch", "-n", "any"),
    ("list", "pods", "-n", "any"),
    ("watch", "pods", "--all-namespaces"),
    # Every child kind is watched: reconciles read the children from the watches.
    *(
        ("watch", resource, "--all-namespaces")
        for resource in (
            "persistentvolumeclaims",
            "services",
            "horizontalpodautoscalers.autoscaling",
            "poddisruptionbudgets.policy",
            "networkpolicies.networking.k8s.io",
            "configmaps",
        )
    ),
    ("create", "persistentvolumeclaims", "-n", "any"),
    ("patch", "persistentvolumeclaims", "-n", "any"),
    ("patch", "deployments.apps", "-n", "any"),
    ("create", "deployments.apps", "-n", "any"),
    ("watch", "deployments.apps", "--all-namespaces"),
    ("patch", "services", "-n", "any"),
    ("patch", "horizontalpodautoscalers.autoscaling", "-n", "any"),
    ("delete", "horizontalpodautoscalers.autoscaling", "-n", "any"),
    ("create", "poddisruptionbudgets.policy", "-n", "any"),
    ("patch", "poddisruptionbudgets.policy", "-n", "any"),
    ("delete", "poddisruptionbudgets.policy", "-n", "any"),
    ("create", "networkpolicies.networking.k8s.io", "-n", "any"),
    ("patch", "networkpolicies.networking.k8s.io", "-n", "any"),
    ("delete", "networkpolicies.networking.k8s.io", "-n", "any"),
    ("create", "events", "-n", "any"),
    ("create", "events.events.k8s.io", "-n", "any"),
    # Why a pod whose volume cannot attach or mount is stuck: its Events alone say.
    ("list", "events", "-n", "any"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "clusterkopfpeerings.kopf.dev/modelops"),
    ("patch", "kopfpeerings.kopf.dev", "-n", "any"),
    # The scrape config files: read, created when absent, overwritten.
    *(("update", f"configmaps/{name}", "-n", namespace) for namespace, name in SCRAPE_CONFIG_MAPS),
    ("get", f"configmaps/{SCRAPE_CONFIG_MAPS[0][1]}", "-n", MONITORING_NAMESPACE),
    ("create", "configmaps", "-n", MONITORING_NAMESPACE),
    # Each model's dashboard, in the model's namespace.
    ("get", "configmaps/iris-dashboard", "-n", "any"),
    ("create", "configmaps", "-n", "any"),
    ("patch", "configmaps/iris-dashboard", "-n", "any"),
    ("delete", "configmaps/iris-dashboard", "-n", "any"),
]
DENIED = [
    ("get", "secrets", "-n", MONITORING_NAMESPACE),
    ("list", "secrets", "--all-namespaces"),
    # Overwriting is for the scrape config files alone, and only where they live.
    ("update", "configmaps/prometheus-config", "-n", MONITORING_NAMESPACE),
    ("update", "configmaps/kube-root-ca.crt", "-n", MONITORING_NAMESPACE),
    ("update", "configmaps/modelops-scrape-32", "-n", MONITORING_NAMESPACE),
    ("update", f"configmaps/{SCRAPE_CONFIG_MAPS[0][1]}", "-n", "any"),
    ("delete", "modeldeployments.modelops.dev", "-n", "any"),
    ("create", "modeldeployments.modelops.dev", "-n", "any"),
    ("create", "pods", "-n", "any"),
    ("delete", "deployments.apps", "-n", "any"),
    ("update", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "pods/exec", "-n", "any"),
    ("delete", "events", "-n", "any"),
]


@pytest.mark.controlplane
@pytest.mark.parametrize("check", ALLOWED, ids=" ".join)
def test_operator_may(
    control_plane: ControlPlane, platform: list[dict[str, Any]], check: tuple[str, ...]
) -> None:
    assert can(control_plane, OPERATOR, *check)


@pytest.mark.controlplane
@pytest.mark.parametrize("check", DENIED, ids=" ".join)
def test_operator_may_not(
    control_plane: ControlPlane, platform: list[dict[str, Any]], check: tuple[str, ...]
) -> None:
    assert not can(control_plane, OPERATOR, *check)


@pytest.mark.controlplane
def test_prometheus_may_only_discover_pods(
    control_plane: ControlPlane, platform: list[dict[str, Any]]
) -> None:
    assert can(control_plane, PROMETHEUS, "watch", "pods", "--all-namespaces")
    assert not can(control_plane, PROMETHEUS, "get", "secrets", "-n", MONITORING_NAMESPACE)
    assert not can(control_plane, PROMETHEUS, "list", "services", "--all-namespaces")
    assert not can(control_plane, PROMETHEUS, "list", "configmaps", "-n", MONITORING_NAMESPACE)


@pytest.mark.controlplane
def test_grafanas_sidecar_may_only_read_configmaps(
    control_plane: ControlPlane, platform: list[dict[str, Any]]
) -> None:
    for verb in ("get", "list", "watch"):
        assert can(control_plane, GRAFANA, verb, "configmaps", "--all-namespaces")
    for verb in ("create", "update", "patch", "delete"):
        assert not can(control_plane, GRAFANA, verb, "configmaps", "-n", "any")
    assert not can(control_plane, GRAFANA, "get", "secrets", "-n", MONITORING_NAMESPACE)
    assert not can(control_plane, GRAFANA, "list", "pods", "--all-namespaces")


@pytest.mark.controlplane
def test_operator_runs_under_its_service_account(
    control_plane: ControlPlane,
    api_client: kubernetes.client.ApiClient,
    platform: list[dict[str, Any]],
    namespace: str,
    tmp_path: Path,
) -> None:

    custom = kubernetes.client.CustomObjectsApi(api_client)
    core = kubernetes.client.CoreV1Api(api_client)
    autoscaling = kubernetes.client.AutoscalingV2Api(api_client)
    policy = kubernetes.client.PolicyV1Api(api_client)
    # Trains fast, and has an autoscaler and a disruption budget to create and then delete.
    name = "wine"
    manifest = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())

    def model() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = custom.get_namespaced_custom_object(
                constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def configmap(cm_namespace: str, cm_name: str) -> dict[str, Any] | None:
        try:
            found = core.read_namespaced_config_map(cm_name, cm_namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        serialized: dict[str, Any] = api_client.sanitize_for_serialization(found)
        return serialized

    def server_child_exists(read: Callable[[str, str], object]) -> bool:
        """Whether `read` (a read_namespaced_... call) finds the model's <name>-server."""
        try:
            read(f"{name}-server", namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def autoscaler_exists() -> bool:
        return server_child_exists(autoscaling.read_namespaced_horizontal_pod_autoscaler)

    def disruption_budget_exists() -> bool:
        return server_child_exists(policy.read_namespaced_pod_disruption_budget)

    deployment_env = env(container(find(platform, "Deployment", "modelops-operator"), "operator"))
    settings = {
        key: value for key, value in deployment_env.items() if key != "MODELOPS_HEALTH_PORT"
    }
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path)
    operator = OperatorProcess(control_plane, KUBECONFIG=str(kubeconfig), **settings)
    kubelet = Kubelet(api_client)
    scrape_job = prometheus.scrape_job_name(namespace, name)
    unkeyed = Settings(scrape_configs=settings["MODELOPS_SCRAPE_CONFIGS"])

    def scrape_file() -> tuple[str, str]:
        """The model's scrape config file, by the placement key that the operator keeps (and
        made, under its own account) beside the files."""
        kept = configmap(*registration.placement_config_map(unkeyed)) or {}
        key = (kept.get("data") or {}).get(registration.PLACEMENT_KEY, "")
        keyed = unkeyed.model_copy(update={"scrape_placement_key": key})
        return registration.scrape_config_map(keyed, namespace, name)

    dashboard = (namespace, constants.DASHBOARD_NAME.format(name=name))
    dashboard_key = grafana.dashboard_key(namespace, name)

    def scrape_jobs() -> list[str]:
        """The jobs in the model's scrape config file."""
        data = (configmap(*scrape_file()) or {}).get("data") or {}
        text = data.get(registration.scrape_file_key(scrape_file()[1]))
        config = yaml.safe_load(text or "") or {}
        return [job["job_name"] for job in config.get("scrape_configs") or []]

    operator.start()
    try:
        serve_model(control_plane, kubelet, namespace, manifest, tmp_path, operator)
        assert autoscaler_exists()
        assert disruption_budget_exists()
        assert core.read_namespaced_service(name, namespace)
        assert core.read_namespaced_persistent_volume_claim(f"{name}-models", namespace)
        assert scrape_jobs().count(scrape_job) == 1
        made = configmap(*scrape_file())
        assert made is not None
        assert made["metadata"]["labels"][constants.LABEL_MANAGED_BY] == constants.MANAGED_BY
        shown = configmap(*dashboard)
        assert shown is not None and list(shown["data"]) == [dashboard_key]
        assert shown["metadata"]["labels"].items() >= grafana.SIDECAR_LABELS.items()
        [owner] = shown["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "ModelDeployment",
            name,
            (model() or {})["metadata"]["uid"],
        )
        reasons = kubectl_ok(
            control_plane, "-n", namespace, "get", "events", "-o", "jsonpath={.items[*].reason}"
        ).split()
        assert "TrainingStarted" in reasons

        # Autoscaling off, one replica: the operator deletes the autoscaler and the budget.
        custom.patch_namespaced_custom_object(
            constants.GROUP,
            constants.VERSION,
            namespace,
            constants.PLURAL,
            name,
            {"spec": {"serving": {"autoscaling": None, "replicas": 1}}},
        )
        wait_until(lambda: not autoscaler_exists(), timeout=60, what="the autoscaler's removal")
        wait_until(
            lambda: not disruption_budget_exists(),
            timeout=60,
            what="the disruption budget's removal (one replica now)",
        )

        # Deletion: the finalizer removes the scrape job; the controller-manager's garbage
        # collector the dashboard, with the model's other children.
        custom.delete_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name
        )
        wait_until(lambda: model() is None, timeout=60, what=f"{name} gone ({operator.log_tail()})")
        assert scrape_job not in scrape_jobs()
        wait_until(
            lambda: configmap(*dashboard) is None,
            timeout=60,
            what=f"{name}'s dashboard ConfigMap collected",
        )
    finally:
        operator.stop()
    log = operator.log()
    # A refusal reads "Forbidden" (the reason) or "(403)" (the client's status line); a bare
    # "403" is also a timestamp's milliseconds. The namespace lifecycle admission also answers
    # 403 to kopf's last Event in a namespace another test is deleting: not a permission.
    refusals = [
        line
        for line in log.splitlines()
        if ("Forbidden" in line or "(403)" in line or "code': 403" in line)
        and "is being terminated" not in line
    ]
    # The refused lines first: a CI log keeps only the start of a long message.
    assert not refusals, "the operator was refused something:\n" + "\n".join(
        [*refusals, "-- the log's end:", operator.log_tail(100)]
    )


# -- the opt-in service-monitors component ---------------------------------------------------

SERVICE_MONITORS = ROOT / "deploy" / "components" / "service-monitors"


def with_service_monitors(directory: Path) -> list[dict[str, Any]]:
    """The base with the component, as an overlay that adds it builds it."""
    overlay = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / BASE, directory)],
        "components": [os.path.relpath(SERVICE_MONITORS, directory)],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    return documents(run([kubectl_binary(), "kustomize", str(directory)]))


def test_service_monitors_component_turns_the_setting_on_and_grants_only_service_monitors(
    tmp_path: Path,
) -> None:
    docs = with_service_monitors(tmp_path)
    operator_env = env(container(find(docs, "Deployment", "modelops-operator"), "operator"))
    assert Settings(service_monitors=operator_env["MODELOPS_SERVICE_MONITORS"]).service_monitors
    role = find(docs, "ClusterRole", "modelops-operator-service-monitors")
    assert role["rules"] == [
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["servicemonitors"],
            "verbs": ["get", "create", "patch", "delete"],
        }
    ]
    binding = find(docs, "ClusterRoleBinding", "modelops-operator-service-monitors")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelops-operator", "namespace": MONITORING_NAMESPACE}
    ]


@pytest.mark.controlplane
def test_service_monitors_component_lets_the_operator_manage_service_monitors(
    control_plane: ControlPlane, platform: list[dict[str, Any]]
) -> None:
    monitors = "servicemonitors.monitoring.coreos.com"
    # kubectl auth can-i resolves the resource through discovery: the CRD must be there.
    [crd] = upstream_crds.PROMETHEUS_OPERATOR.paths()
    kubectl_ok(control_plane, "apply", "--server-side", "-f", str(crd))
    kubectl_ok(control_plane, "wait", "--for=condition=Established", f"crd/{monitors}")
    rbac = str(SERVICE_MONITORS / "rbac.yaml")
    try:
        assert not can(control_plane, OPERATOR, "patch", monitors, "-n", "any")
        kubectl_ok(control_plane, "apply", "-f", rbac)
        # The authorizer sees new RBAC objects through its informers, a moment later.
        wait_until(
            lambda: can(control_plane, OPERATOR, "get", monitors, "-n", "any"),
            what="the new ClusterRoleBinding to take effect",
        )
        for verb in ("create", "patch", "delete"):
            assert can(control_plane, OPERATOR, verb, monitors, "-n", "any")
        assert not can(control_plane, OPERATOR, "list", monitors, "--all-namespaces")
        assert not can(control_plane, OPERATOR, "patch", "podmonitors.monitoring.coreos.com")
    finally:
        # Other tests start without the CRD, as a cluster without the Prometheus Operator.
        kubectl_ok(control_plane, "delete", "--ignore-not-found", "-f", rbac, "-f", str(crd))
