"""A release is one source made two ways: `make release` writes dist/install.yaml and the Helm
chart charts/modelops from deploy/base/operator. A stock Helm lints the chart and renders it; with
its default values it renders exactly the manifest's objects, and each value changes what it
names. The manifest is accepted by a real kube-apiserver."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from deploy_manifests import (
    RELEASE_VERSION,
    ROOT,
    container,
    documents,
    dry_run_apply,
    env,
    find,
    rendered,
)
from modelops_envtest import release
from modelops_envtest.controlplane import ControlPlane
from modelops_operator.settings import Settings

CHART = ROOT / "charts" / "modelops"


def keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]): obj
        for obj in objects
    }


def operator_settings(objects: list[dict[str, Any]]) -> Settings:
    """What the operator makes of the environment the objects give it."""
    variables = env(container(find(objects, "Deployment", release.OPERATOR), "operator"))
    with mock.patch.dict(os.environ, variables, clear=True):
        return Settings()


def test_the_committed_chart_is_what_a_release_makes(tmp_path: Path) -> None:
    """charts/modelops is generated: regenerated at its own version, it is unchanged."""
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    _, made = release.release(version, tmp_path)
    committed = sorted(path.relative_to(CHART) for path in CHART.rglob("*") if path.is_file())
    assert committed == sorted(path.relative_to(made) for path in made.rglob("*") if path.is_file())
    for path in committed:
        assert (CHART / path).read_text() == (made / path).read_text(), (
            f"charts/modelops/{path} differs from what `make release VERSION={version}` writes"
        )


def test_helm_lints_the_chart(helm: release.Helm, released: tuple[Path, Path]) -> None:
    done = helm.run("lint", "--strict", str(released[1]))
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_the_chart_renders_the_manifests_objects(
    helm: release.Helm, released: tuple[Path, Path]
) -> None:
    """With its default values, but the Namespace, which `helm install --create-namespace`
    makes; Helm installs the CRDs from the chart's crds/ folder."""
    manifest, chart = released
    from_manifest = keyed(documents(manifest.read_text()))
    namespace = from_manifest.pop(("Namespace", "", release.NAMESPACE))
    assert namespace["kind"] == "Namespace"
    crds = {key: obj for key, obj in from_manifest.items() if key[0] == "CustomResourceDefinition"}
    from_chart = keyed(rendered(helm, chart))
    assert from_chart.keys() == from_manifest.keys() - crds.keys()
    for key, obj in from_chart.items():
        assert obj == from_manifest[key], key
    chart_crds = keyed(
        [yaml.safe_load(path.read_text()) for path in sorted((chart / "crds").glob("*.yaml"))]
    )
    assert chart_crds == crds


def test_a_release_tags_every_image_with_its_version(released: tuple[Path, Path]) -> None:
    objects = documents(released[0].read_text())
    operator = container(find(objects, "Deployment", release.OPERATOR), "operator")
    settings = operator_settings(objects)
    assert operator["image"] == f"modelops/operator:{RELEASE_VERSION}"
    assert settings.trainer_image == f"modelops/trainer:{RELEASE_VERSION}"
    assert settings.server_image == f"modelops/inference-server:{RELEASE_VERSION}"
    chart = yaml.safe_load((released[1] / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == RELEASE_VERSION


def test_a_release_version_must_be_semantic(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"x\.y\.z"):
        release.release("latest", tmp_path)


def test_the_manifest_is_accepted_by_a_real_apiserver(
    control_plane: ControlPlane, modelops_crds: None, released: tuple[Path, Path]
) -> None:
    applied = dry_run_apply(control_plane, str(released[0]))
    names = {(item["kind"], item["metadata"]["name"]) for item in applied["items"]}
    assert ("Deployment", release.OPERATOR) in names


def test_watched_namespaces_reach_the_operator(
    helm: release.Helm, released: tuple[Path, Path]
) -> None:
    objects = rendered(helm, released[1], 'watchNamespaces=["team-a","team-b"]')
    assert operator_settings(objects).watched_namespaces == ["team-a", "team-b"]


def test_the_release_holds_no_custom_resource(released: tuple[Path, Path]) -> None:
    """One `kubectl apply` of it works on a fresh cluster: no object of a CRD it creates (the
    operator makes its peering object itself)."""
    kinds = {obj["kind"] for obj in documents(released[0].read_text())}
    assert kinds <= {
        "Namespace", "CustomResourceDefinition", "ServiceAccount", "Role", "RoleBinding",
        "ClusterRole", "ClusterRoleBinding", "Deployment", "NetworkPolicy",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("prometheus", "scrape_files", "service_monitors"),
    [("scrapeConfigs", True, False), ("serviceMonitors", False, True), ("none", False, False)],
)
def test_monitoring_is_wired_as_the_values_say(
    helm: release.Helm,
    released: tuple[Path, Path],
    prometheus: str,
    scrape_files: bool,
    service_monitors: bool,
) -> None:
    objects = rendered(
        helm,
        released[1],
        f'monitoring={{"prometheus":"{prometheus}","dashboards":"none"}}',
    )
    settings = operator_settings(objects)
    assert settings.scrape_files == scrape_files
    assert settings.service_monitors == service_monitors
    assert settings.dashboards is False
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert (("Role", "modelops-operator-monitoring") in kinds) == scrape_files
    assert (("ClusterRole", "modelops-operator-service-monitors") in kinds) == service_monitors


def test_images_storage_and_tracking_reach_the_operator(
    helm: release.Helm, released: tuple[Path, Path]
) -> None:
    objects = rendered(
        helm,
        released[1],
        'images={"pullPolicy":"Always","operator":{"repository":"registry.example/mo","tag":"9.9.9"},'
        '"trainer":{"repository":"registry.example/tr"},"server":{"repository":"registry.example/sv"}}',
        'artifactS3={"bucket":"models","credentialsSecret":"s3-credentials"}',
        'mlflow={"trackingUri":"http://mlflow.mlflow:5000"}',
        "operator.replicas=3",
    )
    deployment = find(objects, "Deployment", release.OPERATOR)
    assert deployment["spec"]["replicas"] == 3
    assert container(deployment, "operator")["image"] == "registry.example/mo:9.9.9"
    assert container(deployment, "operator")["imagePullPolicy"] == "Always"
    settings = operator_settings(objects)
    assert settings.trainer_image == f"registry.example/tr:{RELEASE_VERSION}"
    assert settings.server_image == f"registry.example/sv:{RELEASE_VERSION}"
    assert settings.image_pull_policy == "Always"
    assert settings.artifact_s3 is not None and settings.artifact_s3.bucket == "models"
    assert settings.mlflow is not None
    assert settings.mlflow.tracking_uri == "http://mlflow.mlflow:5000"


@pytest.mark.parametrize(
    "value",
    ['monitoring={"prometheus":"prometheus"}', 'watchNamespaces=["Team A"]', "replicas=2"],
)
def test_a_value_the_chart_does_not_take_is_refused(
    helm: release.Helm, released: tuple[Path, Path], value: str
) -> None:
    done = helm.run("template", "modelops", str(released[1]), "--set-json", value, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr


def test_values_schema_is_json(released: tuple[Path, Path]) -> None:
    schema = json.loads((released[1] / "values.schema.json").read_text())
    assert set(schema["properties"]) == set(
        yaml.safe_load((released[1] / "values.yaml").read_text())
    )
