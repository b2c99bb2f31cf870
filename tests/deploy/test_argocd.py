"""The Argo CD manifests: an app of apps whose waves put the CRDs and the operator before any
ModelDeployment, validated against Argo CD's real Application and AppProject CRDs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_manifests import (
    ARGOCD,
    CLUSTER_SCOPED,
    MODELS_NAMESPACE,
    MONITORING_NAMESPACE,
    ROOT,
    build,
    built,
    dry_run_apply,
    find,
    kubectl_ok,
    load_yaml_files,
)
from modelops_envtest import upstream_crds
from modelops_envtest.controlplane import ControlPlane
from modelops_operator import registration, shared_configmap
from modelops_operator.monitoring import grafana
from modelops_operator.settings import Settings

PLACEHOLDER_REPO = "https://github.com/example/modelops.git"
ROOT_APP = ARGOCD / "root.yaml"
APPS = ARGOCD / "apps"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"
# How Argo CD tells the objects it manages: its tracking annotation (the default) or label.
ARGOCD_TRACKING = {"argocd.argoproj.io/tracking-id", "app.kubernetes.io/instance"}


def root_documents() -> list[dict[str, Any]]:
    """argocd/root.yaml: the root Application and its own AppProject."""
    return [doc for doc in yaml.safe_load_all(ROOT_APP.read_text()) if doc]


def root_app() -> dict[str, Any]:
    return find(root_documents(), "Application", "modelops-root")


def apps() -> list[dict[str, Any]]:
    return load_yaml_files(APPS)


def application(name: str) -> dict[str, Any]:
    return find(apps(), "Application", name)


def wave(doc: dict[str, Any]) -> int:
    return int(doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_root_application_points_at_the_apps_folder() -> None:
    source = root_app()["spec"]["source"]
    assert (ROOT / source["path"]) == APPS
    assert root_app()["spec"]["syncPolicy"]["automated"]["prune"] is True


def test_every_repo_url_is_the_marked_placeholder() -> None:
    documents = [*root_documents(), *apps()]
    urls = {doc["spec"]["source"]["repoURL"] for doc in documents if doc["kind"] == "Application"}
    urls |= {
        url
        for doc in documents
        if doc["kind"] == "AppProject"
        for url in doc["spec"]["sourceRepos"]
    }
    assert urls == {PLACEHOLDER_REPO}
    for path in [ROOT_APP, *APPS.glob("*.yaml")]:
        for line in path.read_text().splitlines():
            if PLACEHOLDER_REPO in line:
                assert "CHANGE ME" in line, f"{path.name}: mark the placeholder: {line.strip()}"


def test_waves_order_project_platform_models() -> None:
    project = find(apps(), "AppProject", "modelops")
    platform, models = application("modelops-platform"), application("modelops-models")
    assert wave(project) < wave(platform) < wave(models)
    # Inside the platform, the CRDs come before everything else (wave -1 < default 0).
    crd_waves = {
        wave(doc)
        for doc in built(platform["spec"]["source"]["path"])
        if doc["kind"] == "CustomResourceDefinition"
    }
    assert crd_waves == {-1}


def test_application_sources_exist_and_build() -> None:
    platform, models = application("modelops-platform"), application("modelops-models")
    assert (ROOT / platform["spec"]["source"]["path"] / "kustomization.yaml").exists()
    assert built(platform["spec"]["source"]["path"])
    model_files = sorted((ROOT / models["spec"]["source"]["path"]).glob("*.yaml"))
    kinds = {
        doc["kind"] for path in model_files for doc in yaml.safe_load_all(path.read_text()) if doc
    }
    assert kinds == {"ModelDeployment"}


def test_models_application_tolerates_a_missing_crd_and_creates_its_namespace() -> None:
    models = application("modelops-models")
    options = models["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in options
    assert "CreateNamespace=true" in options
    assert models["spec"]["destination"]["namespace"] == MODELS_NAMESPACE


def test_platform_syncs_git_as_it_is_and_holds_nothing_the_operator_writes() -> None:
    """The operator writes only objects that git does not hold (the scrape config files, the
    models' dashboards), so the platform Application ignores no difference and a sync keeps
    nothing live over git; prune and self-heal leave those objects alone, as they carry no
    tracking label or annotation."""
    platform = application("modelops-platform")
    assert "ignoreDifferences" not in platform["spec"]
    options = platform["spec"]["syncPolicy"].get("syncOptions") or []
    assert not [option for option in options if option.startswith("RespectIgnoreDifferences")]
    assert platform["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}

    docs = built(platform["spec"]["source"]["path"])
    operator_env = {
        item["name"]: item.get("value")
        for item in find(docs, "Deployment", "modelops-operator")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    scrape_files = registration.scrape_config_maps(
        Settings(scrape_configs=operator_env["MODELOPS_SCRAPE_CONFIGS"])
    )
    in_git = {(doc["metadata"].get("namespace"), doc["metadata"]["name"]) for doc in docs}
    assert not in_git & set(scrape_files)
    dashboard = grafana.build_dashboard_configmap(MODELS_NAMESPACE, "iris")
    for written in (dashboard, {"metadata": {"labels": shared_configmap.LABELS}}):
        metadata = written["metadata"]
        assert not [key for key in metadata.get("labels", {}) if key in ARGOCD_TRACKING]
        assert not [key for key in metadata.get("annotations", {}) if key in ARGOCD_TRACKING]


def test_project_admits_what_the_applications_deploy() -> None:
    project = find(apps(), "AppProject", "modelops")
    allowed_kinds = {
        (entry["group"], entry["kind"]) for entry in project["spec"]["clusterResourceWhitelist"]
    }
    platform = application("modelops-platform")
    docs = built(platform["spec"]["source"]["path"])
    cluster_kinds = {
        (doc["apiVersion"].rpartition("/")[0], doc["kind"])
        for doc in docs
        if doc["kind"] in CLUSTER_SCOPED
    }
    # CreateNamespace=true of the models Application creates a Namespace too.
    assert cluster_kinds | {("", "Namespace")} <= allowed_kinds
    destinations = {entry["namespace"] for entry in project["spec"]["destinations"]}
    assert destinations == {MONITORING_NAMESPACE, MODELS_NAMESPACE}
    for app in (platform, application("modelops-models")):
        assert app["spec"]["project"] == "modelops"
        assert app["spec"]["source"]["repoURL"] in project["spec"]["sourceRepos"]


# -- against Argo CD's CRDs in a real apiserver ---------------------------------------------


def test_argo_cds_crds_come_from_its_module_where_no_copy_is_beside_the_repository(
    tmp_path: Path,
) -> None:
    files = upstream_crds.ARGOCD.paths(tmp_path / "no-shared-copy")
    assert [yaml.safe_load(path.read_text())["metadata"]["name"] for path in files] == [
        "applications.argoproj.io",
        "appprojects.argoproj.io",
    ]


def argocd_manifests() -> list[Path]:
    return [ROOT_APP, *sorted(APPS.glob("*.yaml"))]


@pytest.mark.controlplane
@pytest.mark.parametrize("path", argocd_manifests(), ids=lambda path: str(path.relative_to(ROOT)))
def test_argo_cd_accepts_the_manifest(
    control_plane: ControlPlane, argocd_crds: None, path: Path
) -> None:
    applied = dry_run_apply(control_plane, str(path))
    for item in applied.get("items", [applied]):
        assert item["metadata"]["namespace"] == "argocd"


@pytest.mark.controlplane
def test_argo_cd_rejects_a_broken_application(
    control_plane: ControlPlane, argocd_crds: None
) -> None:
    """The dry runs above validate against the real schema: a misspelt field is refused."""
    broken = root_app()
    broken["spec"]["syncPolicy"]["automated"]["prunne"] = True
    done = control_plane.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=json.dumps(broken),
        check=False,
    )
    assert done.returncode != 0 and "prunne" in done.stderr


@pytest.mark.controlplane
def test_argocd_cm_patch_applies_as_documented(
    control_plane: ControlPlane, argocd_crds: None
) -> None:
    """`kubectl -n argocd patch configmap argocd-cm --type merge --patch-file ...`, on the
    ConfigMap Argo CD's install creates (empty here), as a server-side dry run."""
    if control_plane.kubectl(
        "-n", "argocd", "get", "configmap", "argocd-cm", check=False
    ).returncode:
        kubectl_ok(control_plane, "-n", "argocd", "create", "configmap", "argocd-cm")
    out = kubectl_ok(
        control_plane,
        "-n",
        "argocd",
        "patch",
        "configmap",
        "argocd-cm",
        "--type",
        "merge",
        "--patch-file",
        str(CM_PATCH),
        "--dry-run=server",
        "-o",
        "json",
    )
    data = json.loads(out)["data"]
    assert data == yaml.safe_load(CM_PATCH.read_text())["data"]


# -- argocd/install: the Argo CD this project builds, for clusters without registry access ----

INSTALL = Path("argocd") / "install"


def test_install_runs_the_image_the_build_tags_and_never_a_registrys() -> None:
    tagged = next(
        line.split("=", 1)[1].strip('"')
        for line in (ROOT / "images" / "argocd" / "build.sh").read_text().splitlines()
        if line.startswith("ARGOCD_IMAGE=")
    )
    version = next(
        line.split("=", 1)[1]
        for line in (ROOT / "images" / "argocd" / "build.sh").read_text().splitlines()
        if line.startswith("ARGOCD_VERSION=")
    )
    assert tagged == "modelops/argocd:$ARGOCD_VERSION"
    containers = [
        container
        for doc in built(INSTALL)
        if doc["kind"] in ("Deployment", "StatefulSet")
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]
    assert len(containers) == 3
    assert {container["image"] for container in containers} == {f"modelops/argocd:{version}"}
    assert {container["imagePullPolicy"] for container in containers} == {"IfNotPresent"}


def test_install_settings_carry_the_label_argo_cd_finds_them_by() -> None:
    settings = [doc for doc in built(INSTALL / "config") if doc["kind"] in ("ConfigMap", "Secret")]
    assert {doc["metadata"]["name"] for doc in settings} == {
        "argocd-cm",
        "argocd-rbac-cm",
        "argocd-cmd-params-cm",
        "argocd-secret",
    }
    assert all(
        doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd" for doc in settings
    )


@pytest.mark.controlplane
def test_install_passes_a_server_side_dry_run(
    control_plane: ControlPlane, argocd_crds: None
) -> None:
    applied = dry_run_apply(control_plane, "-", stdin=build(INSTALL))
    kinds = sorted(item["kind"] for item in applied["items"])
    assert kinds.count("AppProject") == 1 and kinds.count("StatefulSet") == 1
