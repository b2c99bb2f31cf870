"""Children are the model's alone: an object of the same name made by someone else is never
taken over, and live edits of what the model sets are written back."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import pytest
from conftest import Models, deploy_to_ready, sample  # type: ignore[import-not-found]
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.waiting import wait_until
from modelops_operator import api, builders
from modelops_operator.kube import Kube, NameTaken, covers
from modelops_operator.settings import Settings

pytestmark = pytest.mark.controlplane

MODEL = api.ModelRecord(
    version="v0123456789ab",
    sha256="f" * 64,
    artifact_path="/models/ns/wine/v0123456789ab",
    metrics={"accuracy": 0.97},
)


def test_what_the_apiserver_returns_covers_every_child_as_built(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """Else every reconcile would write every child again: defaults and dropped zero values
    must not read as drift."""
    kube = Kube(api_client)
    manifest = sample("wine")
    manifest["spec"]["serving"]["resources"] = {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    spec = api.ModelDeploymentSpec.model_validate(manifest["spec"])
    assert spec.serving.autoscaling is not None
    settings = Settings()
    children = [
        builders.build_claim("wine", namespace, spec.storage, settings),
        builders.build_training_job("wine", namespace, spec, settings),
        builders.build_server_deployment("wine", namespace, spec, MODEL, settings),
        builders.build_service("wine", namespace),
        builders.build_autoscaler("wine", namespace, spec.serving.autoscaling),
    ]
    for child in children:
        assert child is not None
        applied = kube.apply(child, None)
        assert covers(applied, child), f"{child['kind']} reads as drifted right after its apply"
        again = kube.get(child["apiVersion"], child["kind"], namespace, child["metadata"]["name"])
        assert covers(again, child)


def test_a_child_the_watches_have_not_seen_is_created_and_anothers_is_never_taken_over(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """A reconcile that finds no child in its watches applies it as a create: one someone made
    under that name a moment before (the watches not caught up yet) is found, not overwritten
    by a forced apply, and the reconcile judges it as any observed child (ObjectInTheWay)."""
    kube = Kube(api_client)
    service = builders.build_service("iris", namespace)
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris", "namespace": namespace, "labels": {"team": "web"}},
        "spec": {"selector": {"app": "website"}, "ports": [{"port": 80}]},
    }
    made = kube.create(theirs)
    with pytest.raises(NameTaken) as taken:
        kube.apply(service, None)
    assert taken.value.existing["metadata"]["uid"] == made["metadata"]["uid"]
    after = kube.get("v1", "Service", namespace, "iris")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    assert after["spec"]["selector"] == {"app": "website"}

    kube.delete("v1", "Service", namespace, "iris")
    wait_until(lambda: kube.get("v1", "Service", namespace, "iris") is None, what="it gone")
    created = kube.apply(service, None)
    assert covers(created, service)


def test_covers_sees_a_changed_or_missing_value() -> None:
    wanted = {"spec": {"replicas": 2, "paused": False, "ports": [{"port": 80}]}}
    assert covers({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}]}}, wanted)
    assert not covers({"spec": {"replicas": 5, "ports": [{"port": 80}]}}, wanted)
    assert not covers({"spec": {"replicas": 2, "ports": []}}, wanted)
    assert not covers({"spec": {"ports": [{"port": 80}]}}, wanted)


def test_kubectl_scale_and_set_image_are_repaired(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    manifest = sample("iris")
    deploy_to_ready(models, kubelet, trained, manifest)
    image = models.kubectl(
        "get",
        "deployment",
        "iris-server",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout

    def deployment() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            models.kubectl("get", "deployment", "iris-server", "-o", "json").stdout
        )
        return found

    models.kubectl("scale", "deployment", "iris-server", "--replicas=5")
    wait_until(
        lambda: deployment()["spec"]["replicas"] == manifest["spec"]["serving"]["replicas"],
        what="kubectl scale to be undone",
    )
    models.kubectl("set", "image", "deployment/iris-server", "server=someone/else:latest")
    wait_until(
        lambda: deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == image,
        what="kubectl set image to be undone",
    )
    kubelet.serve_until(
        models.namespace,
        "iris",
        lambda: models.status("iris").get("phase") == "Ready",
        what="iris Ready again",
    )


def test_an_object_in_the_way_is_reported_and_never_taken_over(
    control_plane: ControlPlane, models: Models, kubelet: Kubelet, trained: Any
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "iris", "namespace": models.namespace, "labels": {"team": "web"}},
        "spec": {"selector": {"app": "website"}, "ports": [{"port": 80}]},
    }
    models.apply(theirs)
    models.apply(sample("iris"))
    job = models.training_job("iris")
    kubelet.finish_training(
        models.namespace, job, trained(sample("iris")["spec"]["training"], "iris")
    )
    status = models.wait_for_phase("iris", "Failed")
    assert status["message"].startswith(
        f"Service {models.namespace}/iris already exists and is not managed by ModelDeployment iris"
    ), status["message"]
    assert models.condition("iris", "Ready")["reason"] == "ObjectInTheWay"

    def service() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            models.kubectl("get", "service", "iris", "-o", "json").stdout
        )
        return found

    assert service()["spec"]["selector"] == {"app": "website"}
    assert not service()["metadata"].get("ownerReferences")
    models.kubectl("delete", "mdep", "iris", "--timeout=30s")
    assert service()["spec"]["selector"] == {"app": "website"}, "the user's Service survives"
