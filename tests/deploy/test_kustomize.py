"""The Kustomize tree builds, and what it builds fits the operator: its settings, the scrape
config files it writes and Prometheus loads, the dashboards Grafana's sidecar collects. No
apiserver needed (see test_dry_run.py)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_manifests import (
    ARGOCD,
    CLUSTER_SCOPED,
    CRDS,
    DEPLOY,
    KUSTOMIZATIONS,
    MODELS_NAMESPACE,
    MONITORING_NAMESPACE,
    OVERLAYS,
    ROOT,
    SAMPLES,
    build,
    built,
    container,
    documents,
    env,
    find,
    find_prefixed,
    volume,
)
from modelops_envtest.controlplane import kubectl_binary
from modelops_envtest.prometheus_tools import PROMTOOL_VERSION
from modelops_operator import builders, registration
from modelops_operator.monitoring import grafana, prometheus
from modelops_operator.settings import Settings

BASE = Path("deploy/base")
FLEET_DASHBOARD = DEPLOY / "base" / "monitoring" / "fleet-dashboard.json"


def operator_deployment(path: Path = BASE) -> dict:
    return find(built(path), "Deployment", "modelops-operator")


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=str)
def test_every_kustomization_builds(path: Path) -> None:
    docs = built(path)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc


def test_the_tree_has_base_overlays_and_models() -> None:
    assert {str(path) for path in OVERLAYS} >= {
        "deploy/overlays/kind",
        "deploy/overlays/production",
        "deploy/overlays/models",
    }


def test_crds_come_from_the_crds_folder_unchanged() -> None:
    from_folder = {
        doc["metadata"]["name"]: doc
        for path in sorted((ROOT / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    crds = {
        doc["metadata"]["name"]: doc
        for doc in built(BASE)
        if doc["kind"] == "CustomResourceDefinition"
    }
    assert crds.keys() == from_folder.keys()
    for name, crd in crds.items():
        assert crd["spec"] == from_folder[name]["spec"], name
        # Argo CD: first, and never pruned or deleted with the Application.
        annotations = crd["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
        assert set(annotations["argocd.argoproj.io/sync-options"].split(",")) == {
            "Prune=false",
            "Delete=false",
        }


@pytest.mark.parametrize("path", [BASE, *OVERLAYS], ids=str)
def test_builds_with_a_stock_kustomize(path: Path) -> None:
    """No flags, as `kubectl apply -k` and a stock Argo CD build: what lies outside a root
    (crds/, deploy/samples/) is a folder with its own kustomization, which kustomize loads from
    anywhere (plain files it loads only from inside the root)."""
    done = subprocess.run(
        [kubectl_binary(), "kustomize", str(ROOT / path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert documents(done.stdout)


def test_argo_cd_needs_no_kustomize_build_options() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert "kustomize.buildOptions" not in patch["data"]


@pytest.mark.parametrize("folder", [CRDS, SAMPLES], ids=lambda path: path.name)
def test_plain_folders_kustomizations_stay_out_of_kubectl_apply_f(folder: Path) -> None:
    """`kubectl apply -f crds/` (envtest, these tests) and `kubectl apply -f deploy/samples/`
    (the demos) read every *.yaml, *.yml and *.json there as an object: the kustomization that
    lets a stock kustomize load the folder has the one name kustomize reads that they skip."""
    assert (folder / "Kustomization").is_file()
    assert not list(folder.glob("kustomization.*"))


@pytest.mark.parametrize("path", [BASE, *(p for p in OVERLAYS if p.name != "models")], ids=str)
def test_namespaces_are_explicit(path: Path) -> None:
    for doc in built(path):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] in CLUSTER_SCOPED:
            assert namespace is None, f"{doc['kind']} {doc['metadata']['name']} is cluster-scoped"
        else:
            assert namespace == MONITORING_NAMESPACE, f"{doc['kind']} {doc['metadata']['name']}"


def test_operator_deployment_is_hardened_and_probed() -> None:
    deployment = operator_deployment()
    pod = deployment["spec"]["template"]["spec"]
    operator = container(deployment, "operator")
    assert operator["image"] == "modelops/operator:0.1.0"
    assert pod["serviceAccountName"] == "modelops-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert operator["securityContext"]["readOnlyRootFilesystem"] is True
    assert operator["securityContext"]["allowPrivilegeEscalation"] is False
    assert operator["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert operator["resources"]["requests"] and operator["resources"]["limits"]["memory"]
    port = int(env(operator)["MODELOPS_HEALTH_PORT"])
    assert {"name": "health", "containerPort": port} in operator["ports"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Two replicas, one acting through the peering; a rollout never goes below what is there.
    assert deployment["spec"]["replicas"] == 2
    assert env(operator)["MODELOPS_STANDALONE"] == "false"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_operator_env_names_are_settings_the_operator_reads() -> None:
    names = {name for name in env(container(operator_deployment(), "operator"))}
    known = {f"MODELOPS_{field.upper()}" for field in Settings.model_fields}
    assert names - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= known


def scrape_config_maps(deployment: dict) -> list[tuple[str, str]]:
    """The scrape config files' ConfigMaps that the operator of `deployment` writes."""
    configured = env(container(deployment, "operator"))["MODELOPS_SCRAPE_CONFIGS"]
    return registration.scrape_config_maps(Settings(scrape_configs=configured))


def test_operator_env_points_at_the_monitoring_it_writes() -> None:
    docs = built(BASE)
    settings = env(container(operator_deployment(), "operator"))
    assert settings["MODELOPS_SCRAPE_CONFIGS"] == Settings().scrape_configs
    files = scrape_config_maps(operator_deployment())
    assert files == registration.scrape_config_maps(Settings())
    assert len(files) == prometheus.SCRAPE_FILES == 32
    assert {namespace for namespace, _ in files} == {MONITORING_NAMESPACE}
    names = [name for _, name in files]
    assert len(set(names)) == len(names)
    # The Role lets the operator overwrite exactly these ConfigMaps, in their namespace only.
    role = find(docs, "Role", "modelops-operator-monitoring")
    assert role["metadata"]["namespace"] == MONITORING_NAMESPACE
    [rule] = role["rules"]
    assert (rule["apiGroups"], rule["resources"], rule["verbs"]) == (
        [""],
        ["configmaps"],
        ["update"],
    )
    assert sorted(rule["resourceNames"]) == sorted(names)


def test_prometheus_reloads_and_loads_the_operators_scrape_files() -> None:
    docs = built(BASE)
    deployment = find(docs, "Deployment", "prometheus")
    server = container(deployment, "prometheus")
    assert server["image"].startswith("prom/prometheus:")
    # No unauthenticated lifecycle API: a changed file is re-read by Prometheus itself.
    assert "--web.enable-lifecycle" not in server["args"]
    assert "--enable-feature=auto-reload-config" in server["args"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in server["args"]
    assert volume(deployment, "config")["configMap"]["name"] == "prometheus-config"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "prometheus"

    # Exactly the operator's 32 ConfigMaps, each optional (made on first use), projected into
    # one directory: each holds one key, named after it, so none shadows another.
    files = scrape_config_maps(operator_deployment())
    assert volume(deployment, "scrape-configs")["projected"]["sources"] == [
        {"configMap": {"name": name, "optional": True}} for _, name in files
    ]
    [mount] = [m for m in server["volumeMounts"] if m["name"] == "scrape-configs"]
    assert mount["readOnly"] is True
    directory = PurePosixPath(mount["mountPath"])

    # The platform's prometheus.yml loads every file there.
    config = yaml.safe_load(find(docs, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    [pattern] = config["scrape_config_files"]
    assert PurePosixPath(pattern).parent == directory
    for _, name in files:
        assert fnmatch.fnmatch(str(directory / registration.scrape_file_key(name)), pattern)


def test_the_base_prometheus_config_loads_the_files_the_operator_writes(
    promtool: Path, tmp_path: Path
) -> None:
    """promtool on the base's prometheus.yml, with its scrape_config_files glob pointed at a
    local copy of the mounted directory holding the files of two models as the operator writes
    them."""
    settings = Settings()
    mounted = tmp_path / "modelops-scrape"
    mounted.mkdir()
    written: dict[str, str | None] = {}
    for namespace, name in (("ml", "iris"), ("dev", "wine")):
        _, configmap = registration.scrape_config_map(settings, namespace, name)
        job = prometheus.build_scrape_job(namespace, name, "15s")
        written[configmap] = prometheus.with_scrape_job(written.get(configmap), job)
    for configmap, text in written.items():
        (mounted / registration.scrape_file_key(configmap)).write_text(text or "")
    config = yaml.safe_load(
        find(built(BASE), "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    )
    config["scrape_config_files"] = [
        str(mounted / PurePosixPath(pattern).name) for pattern in config["scrape_config_files"]
    ]
    main = tmp_path / "prometheus.yml"
    main.write_text(yaml.safe_dump(config))

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(promtool), "check", "config", str(main)], capture_output=True, text=True
        )

    checked = check()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The files were read, not merely matched: a job in two of them is refused.
    _, other = next(
        configmap
        for configmap in registration.scrape_config_maps(settings)
        if configmap[1] not in written
    )
    iris = prometheus.build_scrape_job("ml", "iris", "15s")
    (mounted / registration.scrape_file_key(other)).write_text(
        prometheus.with_scrape_job(None, iris)
    )
    checked = check()
    assert checked.returncode != 0 and iris["job_name"] in checked.stdout + checked.stderr


def test_prometheus_may_discover_pods_everywhere_and_nothing_else() -> None:
    docs = built(BASE)
    binding = find(docs, "ClusterRoleBinding", "modelops-prometheus")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": MONITORING_NAMESPACE}
    ]
    role = find(docs, "ClusterRole", binding["roleRef"]["name"])
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


def test_grafana_provisions_the_datasource_and_both_dashboard_sources() -> None:
    docs = built(BASE)
    deployment = find(docs, "Deployment", "grafana")
    mounts = {m["name"]: m["mountPath"] for m in container(deployment, "grafana")["volumeMounts"]}

    datasources_cm = find_prefixed(docs, "ConfigMap", "grafana-provisioning-datasources-")
    assert (
        volume(deployment, "datasources")["configMap"]["name"] == datasources_cm["metadata"]["name"]
    )
    (source,) = yaml.safe_load(datasources_cm["data"]["datasources.yaml"])["datasources"]
    assert source["uid"] == grafana.DATASOURCE_UID == "prometheus"
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    service_name, service_namespace, _ = url.hostname.split(".", 2)
    service = find(docs, "Service", service_name)
    assert (service_name, service["metadata"]["namespace"]) == ("prometheus", service_namespace)
    assert url.port in [port["port"] for port in service["spec"]["ports"]]

    providers_cm = find_prefixed(docs, "ConfigMap", "grafana-provisioning-dashboards-")
    assert (
        volume(deployment, "dashboard-providers")["configMap"]["name"]
        == providers_cm["metadata"]["name"]
    )
    providers = yaml.safe_load(providers_cm["data"]["dashboard-providers.yaml"])["providers"]
    paths = {provider["options"]["path"] for provider in providers}
    assert paths == {mounts["model-dashboards"], mounts["fleet-dashboard"]}
    assert mounts["datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["dashboard-providers"] == "/etc/grafana/provisioning/dashboards"

    # The models' dashboards: a directory the sidecar fills (next test).
    assert "emptyDir" in volume(deployment, "model-dashboards")
    # The committed fleet dashboard, unchanged.
    fleet_cm = find_prefixed(docs, "ConfigMap", "grafana-fleet-dashboard-")
    assert (
        volume(deployment, "fleet-dashboard")["configMap"]["name"] == fleet_cm["metadata"]["name"]
    )
    fleet = json.loads(fleet_cm["data"]["fleet-dashboard.json"])
    assert fleet == json.loads(FLEET_DASHBOARD.read_text())
    assert fleet["uid"] == grafana.FLEET_UID


def test_grafanas_sidecar_collects_the_operators_dashboards_from_every_namespace() -> None:
    docs = built(BASE)
    deployment = find(docs, "Deployment", "grafana")
    pod = deployment["spec"]["template"]["spec"]
    sidecar = container(deployment, "dashboards")
    assert sidecar["image"].rpartition(":")[2] not in ("", "latest")
    settings = env(sidecar)
    assert {settings["LABEL"]: settings["LABEL_VALUE"]} == grafana.SIDECAR_LABELS
    assert settings["RESOURCE"] == "configmap"
    assert settings["NAMESPACE"] == "ALL"
    assert settings["METHOD"] == "WATCH"
    # It writes where Grafana's models provider reads.
    sidecar_mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    grafana_mounts = {
        m["name"]: m["mountPath"] for m in container(deployment, "grafana")["volumeMounts"]
    }
    assert settings["FOLDER"] == sidecar_mounts["model-dashboards"]
    providers_cm = find_prefixed(docs, "ConfigMap", "grafana-provisioning-dashboards-")
    providers = yaml.safe_load(providers_cm["data"]["dashboard-providers.yaml"])["providers"]
    [models] = [p for p in providers if p["options"]["path"] == grafana_mounts["model-dashboards"]]
    assert models["disableDeletion"] is False, "a deleted model's dashboard goes"
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    assert sidecar["securityContext"]["capabilities"]["drop"] == ["ALL"]

    # What the operator makes for a model is what the sidecar picks up: the label, and one
    # .json key that no other model's dashboard shares.
    dashboard = grafana.build_dashboard_configmap("ml", "iris")
    assert (
        dashboard["metadata"]["labels"].items()
        >= {settings["LABEL"]: settings["LABEL_VALUE"]}.items()
    )
    assert dashboard["metadata"]["name"] == "iris-dashboard"
    assert dashboard["metadata"]["namespace"] == "ml"
    [key] = dashboard["data"]
    assert key.endswith(".json")
    assert key != next(iter(grafana.build_dashboard_configmap("ml2", "iris")["data"]))

    # Only the sidecar holds an apiserver token: the pod mounts none by default, and the
    # grafana container never mounts the sidecar's.
    assert pod["serviceAccountName"] == "grafana"
    assert pod["automountServiceAccountToken"] is False
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert sidecar_mounts["api-access"] == token
    assert "api-access" not in grafana_mounts
    assert token not in grafana_mounts.values()
    sources = volume(deployment, "api-access")["projected"]["sources"]
    assert [next(iter(source)) for source in sources] == [
        "serviceAccountToken",
        "configMap",
        "downwardAPI",
    ]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"


def test_grafanas_service_account_may_only_read_configmaps() -> None:
    docs = built(BASE)
    account = find(docs, "ServiceAccount", "grafana")
    assert account["metadata"]["namespace"] == MONITORING_NAMESPACE
    assert account["automountServiceAccountToken"] is False
    bindings = [
        doc
        for doc in docs
        if doc["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(subject["name"] == "grafana" for subject in doc["subjects"])
    ]
    assert [binding["metadata"]["name"] for binding in bindings] == ["modelops-grafana-dashboards"]
    [binding] = bindings
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "grafana", "namespace": MONITORING_NAMESPACE}
    ]
    role = find(docs, "ClusterRole", binding["roleRef"]["name"])
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
    ]


def test_git_holds_no_models_scrape_job_or_dashboard() -> None:
    """Every model's scrape job and dashboard is the operator's to make and remove."""
    docs = built(BASE)
    prometheus_yml = yaml.safe_load(
        find(docs, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    )
    assert not [
        job
        for job in prometheus_yml["scrape_configs"]
        if job["job_name"].startswith(prometheus.JOB_PREFIX)
    ]
    labelled = [
        doc["metadata"]["name"]
        for doc in docs
        if doc["kind"] == "ConfigMap"
        and doc["metadata"].get("labels", {}).items() >= grafana.SIDECAR_LABELS.items()
    ]
    assert labelled == []
    # Nor any scrape config file: the operator makes them on first use (in git, Argo CD would
    # reset their data).
    names = {name for _, name in scrape_config_maps(operator_deployment())}
    assert not [doc for doc in docs if doc["metadata"]["name"] in names]


def test_kind_overlay_uses_loaded_images_and_one_replica() -> None:
    docs = built("deploy/overlays/kind")
    deployment = find(docs, "Deployment", "modelops-operator")
    operator = container(deployment, "operator")
    assert deployment["spec"]["replicas"] == 1
    assert operator["imagePullPolicy"] == "Never"
    assert env(operator)["MODELOPS_IMAGE_PULL_POLICY"] == "Never"
    prometheus_deployment = find(docs, "Deployment", "prometheus")
    server = container(prometheus_deployment, "prometheus")
    assert server["imagePullPolicy"] == "Never"
    # The base's configuration: prometheus.yml and the projected scrape config files.
    base_prometheus = find(built(BASE), "Deployment", "prometheus")
    for name in ("config", "scrape-configs"):
        assert volume(prometheus_deployment, name) == volume(base_prometheus, name)
    assert server["volumeMounts"] == container(base_prometheus, "prometheus")["volumeMounts"]
    assert find(docs, "ConfigMap", "prometheus-config") == find(
        built(BASE), "ConfigMap", "prometheus-config"
    )
    assert env(operator)["MODELOPS_SCRAPE_CONFIGS"] == Settings().scrape_configs
    # Prometheus answers Grafana alone (its NetworkPolicy): no port on every node's address.
    assert all(
        doc["spec"].get("type", "ClusterIP") == "ClusterIP"
        for doc in docs
        if doc["kind"] == "Service"
    )


def test_kind_overlay_has_no_grafana_but_keeps_the_dashboards() -> None:
    """Grafana cannot be built offline; the operator still writes its dashboards, with the
    base's permissions, for a Grafana of one's own."""
    docs = built("deploy/overlays/kind")
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert not names & {
        ("Deployment", "grafana"),
        ("Service", "grafana"),
        ("ServiceAccount", "grafana"),
        ("ClusterRole", "modelops-grafana-dashboards"),
        ("ClusterRoleBinding", "modelops-grafana-dashboards"),
    }
    assert find(docs, "ClusterRole", "modelops-operator") == find(
        built(BASE), "ClusterRole", "modelops-operator"
    )
    assert {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"} == {
        doc["metadata"]["name"] for doc in built(BASE) if doc["kind"] == "ConfigMap"
    }


def test_kind_overlay_runs_the_metrics_server_built_here() -> None:
    """The add-on names upstream's image; the kind overlay the one images/metrics-server builds,
    of the same version, loaded, and reading kind's self-signed kubelets."""
    script = (ROOT / "images" / "metrics-server" / "build.sh").read_text()
    [version] = [
        line.split("=", 1)[1] for line in script.splitlines()
        if line.startswith("METRICS_SERVER_VERSION=")
    ]  # fmt: skip
    addon = container(
        find(built("deploy/addons/metrics-server"), "Deployment", "metrics-server"),
        "metrics-server",
    )
    kind = container(
        find(built("deploy/addons/kind-metrics-server"), "Deployment", "metrics-server"),
        "metrics-server",
    )
    assert addon["image"] == f"registry.k8s.io/metrics-server/metrics-server:{version}"
    assert kind["image"] == f"modelops/metrics-server:{version}"
    assert kind["imagePullPolicy"] == "Never"
    assert set(kind["args"]) - set(addon["args"]) == {"--kubelet-insecure-tls"}
    assert "--kubelet-insecure-tls" not in addon["args"]


def test_the_network_policy_addon_runs_the_kube_router_built_here_with_least_rights() -> None:
    """The enforcer's image is the version images/network-policy builds and tags, loaded;
    kube-router's firewall alone runs; it holds two capabilities, not privilege, and reads the
    API without writing."""
    script = (ROOT / "images" / "network-policy" / "build.sh").read_text()
    [version] = [
        line.split("=", 1)[1] for line in script.splitlines()
        if line.startswith("KUBE_ROUTER_VERSION=")
    ]  # fmt: skip
    assert (
        f"github.com/cloudnativelabs/kube-router/v2 {version}"
        in (ROOT / "images" / "network-policy" / "go.mod").read_text()
    )
    docs = built("deploy/addons/network-policy")
    router = container(find(docs, "DaemonSet", "kube-router"), "kube-router")
    assert router["image"] == f"modelops/kube-router:{version}"
    assert router["imagePullPolicy"] == "Never"
    assert {"--run-firewall=true", "--run-router=false", "--run-service-proxy=false"} <= set(
        router["args"]
    )
    security = router["securityContext"]
    assert not security.get("privileged")
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    [rules] = [doc["rules"] for doc in docs if doc["kind"] == "ClusterRole"]
    assert {verb for rule in rules for verb in rule["verbs"]} <= {"get", "list", "watch"}


def test_prometheus_is_the_version_of_the_projects_promtool() -> None:
    """One Prometheus everywhere: the base's image, the kind overlay's locally built one, and
    promtool, whose Go module is versioned v0.<100 * major + minor>.<patch>."""
    code, patch = PROMTOOL_VERSION.removeprefix("v0.").split(".")
    version = f"v{int(code) // 100}.{int(code) % 100}.{patch}"
    images = {
        str(path): container(find(built(path), "Deployment", "prometheus"), "prometheus")["image"]
        for path in (BASE, Path("deploy/overlays/kind"))
    }
    assert images == {
        "deploy/base": f"prom/prometheus:{version}",
        "deploy/overlays/kind": f"modelops/prometheus:{version}",
    }


def test_production_overlay_keeps_prometheus_data_and_an_operator_replica() -> None:
    docs = built("deploy/overlays/production")
    claim = find(docs, "PersistentVolumeClaim", "prometheus-data")
    data = volume(find(docs, "Deployment", "prometheus"), "data")
    assert data == {
        "name": "data",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    budget = find(docs, "PodDisruptionBudget", "modelops-operator")
    operator = find(docs, "Deployment", "modelops-operator")
    assert budget["spec"]["selector"]["matchLabels"] == operator["spec"]["selector"]["matchLabels"]
    assert operator["spec"]["replicas"] > budget["spec"]["minAvailable"]


def test_models_overlay_lists_every_sample() -> None:
    docs = built("deploy/overlays/models")
    models = [doc for doc in docs if doc["kind"] == "ModelDeployment"]
    samples = sorted(path.stem for path in SAMPLES.glob("*.yaml"))
    assert sorted(doc["metadata"]["name"] for doc in models) == samples
    assert {doc["metadata"]["namespace"] for doc in models} == {MODELS_NAMESPACE}
    assert find(docs, "Namespace")["metadata"]["name"] == MODELS_NAMESPACE


@pytest.mark.parametrize("secret", [True, False], ids=["with the Secret", "without it"])
def test_grafana_admin_password_is_the_secrets_or_random_never_the_default(
    secret: bool, tmp_path: Path
) -> None:
    deployment = find(built(BASE), "Deployment", "grafana")
    grafana_env = container(deployment, "grafana")["env"]
    assert {"name": "GF_SECURITY_ADMIN_PASSWORD__FILE", "value": "/admin/password"} in grafana_env
    assert not [item for item in grafana_env if item["name"] == "GF_SECURITY_ADMIN_PASSWORD"]
    [init] = deployment["spec"]["template"]["spec"]["initContainers"]
    assert volume(deployment, "admin-secret")["secret"] == {
        "secretName": "grafana-admin",
        "optional": True,
    }
    # The init container's script, run here with its two mounts as local folders.
    mounted, written = tmp_path / "secret", tmp_path / "admin"
    mounted.mkdir()
    written.mkdir()
    if secret:
        (mounted / "password").write_text("chosen-by-the-admin")
    script = init["args"][0].replace("/secret/", f"{mounted}/").replace("/admin/", f"{written}/")
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    password = (written / "password").read_text().strip()
    if secret:
        assert password == "chosen-by-the-admin"
    else:
        assert len(password) >= 40 and password != "admin"
        assert "admin login stays disabled" in run.stderr


def test_child_images_are_the_images_the_operator_defaults_to() -> None:
    settings = env(container(operator_deployment(), "operator"))
    defaults = Settings()
    assert settings["MODELOPS_TRAINER_IMAGE"] == defaults.trainer_image
    assert settings["MODELOPS_SERVER_IMAGE"] == defaults.server_image
    assert builders.SERVER_PORT_NAME == "http"  # the port the operator's scrape jobs keep


def test_builds_are_deterministic() -> None:
    build.cache_clear()
    first = build(BASE)
    build.cache_clear()
    assert build(BASE) == first
