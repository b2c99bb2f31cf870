"""A reconcile that keeps failing for a reason that passes by itself (a webhook that is down,
children of an earlier model of the name still being collected) is retried; once the failures
have lasted LASTING_FAILURE_SECONDS, status says what fails, in the apiserver's words, and the
model recovers by itself when the cause goes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Models, deploy_to_ready, sample, serve_to_ready  # type: ignore[import-not-found]
from modelops_envtest.controlplane import ControlPlane, free_port
from modelops_envtest.kubelet import Kubelet

pytestmark = pytest.mark.controlplane

WEBHOOK = "deployments.down.example.com"


def lifecycle_reasons(status: dict[str, Any]) -> set[str]:
    return {
        condition["reason"]
        for condition in status["conditions"]
        if condition["type"] in ("Trained", "Deployed", "Ready")
    }


def test_a_webhook_that_is_down_reaches_status_and_the_model_recovers_when_it_is_back(
    control_plane: ControlPlane, models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """Every write of the model's Deployment gets the apiserver's 500: a validating webhook
    that fails closed, and nothing listens where it points."""
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"down-{models.namespace}"},
        "webhooks": [
            {
                "name": WEBHOOK,
                "clientConfig": {"url": f"https://127.0.0.1:{free_port()}/validate"},
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ],
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": models.namespace}
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(webhook))
    try:
        manifest = sample("iris")
        models.apply(manifest)
        job = models.training_job("iris")
        kubelet.finish_training(
            models.namespace, job, trained(manifest["spec"]["training"], "iris")
        )

        failed = models.wait_for_phase("iris", "Failed", timeout=90)
        assert f'failed calling webhook "{WEBHOOK}"' in failed["message"], failed["message"]
        assert "the apiserver failed a write" in failed["message"]
        assert lifecycle_reasons(failed) == {"Retrying"}
    finally:
        control_plane.kubectl(
            "delete", "validatingwebhookconfiguration", f"down-{models.namespace}"
        )

    ready = serve_to_ready(models, kubelet, "iris")
    assert "webhook" not in ready["message"]


def test_children_of_an_earlier_model_of_the_name_still_going_reach_status(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    """The model is deleted and made again while a finalizer holds its old Deployment: the
    name is taken, by an object that will go."""
    deploy_to_ready(models, kubelet, trained, sample("iris"))
    models.kubectl(
        "patch", "deployment", "iris-server", "--type=merge",
        "-p", json.dumps({"metadata": {"finalizers": ["example.com/hold"]}}),
    )  # fmt: skip
    models.kubectl("delete", "mdep", "iris")
    manifest = sample("iris")
    models.apply(manifest)
    job = models.training_job("iris")
    kubelet.finish_training(models.namespace, job, trained(manifest["spec"]["training"], "iris"))
    try:
        failed = models.wait_for_phase("iris", "Failed", timeout=90)
        assert (
            "Deployment iris-server of an earlier ModelDeployment of this name is still being "
            "garbage-collected" in failed["message"]
        ), failed["message"]
        assert lifecycle_reasons(failed) == {"Retrying"}
    finally:
        models.kubectl(
            "patch", "deployment", "iris-server", "--type=json",
            "-p", json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]),
        )  # fmt: skip

    serve_to_ready(models, kubelet, "iris")
