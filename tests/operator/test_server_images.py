"""spec.serving.image is one of the server images the operator's admin allows: the serving pod's
fetch container runs that image with the model's storage credentials, so any other image is
refused in status, and what serves keeps serving."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Models, deploy_to_ready, sample  # type: ignore[import-not-found]
from modelops_envtest.kubelet import Kubelet
from modelops_operator import api, builders
from modelops_operator.settings import Settings

FOREIGN = "registry.example/attacker/server:1"


def serving(image: str | None) -> api.ServingSpec:
    return api.ServingSpec.model_validate({"image": image} if image else {})


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("modelops/inference-server:0.1.0", "modelops/inference-server"),
        ("registry.example:5000/team/server", "registry.example:5000/team/server"),
        (
            "registry.example:5000/team/server:2@sha256:" + "a" * 64,
            "registry.example:5000/team/server",
        ),
        ("server@sha256:" + "a" * 64, "server"),
    ],
)
def test_an_image_reference_names_its_repository(image: str, repository: str) -> None:
    assert builders.image_repository(image) == repository


def test_by_default_only_the_operators_own_server_repository_may_serve() -> None:
    settings = Settings(server_image="registry.example/modelops/inference-server:0.2.0")
    assert builders.server_image_refusal(serving(None), settings) is None
    ours = serving("registry.example/modelops/inference-server:0.1.0-debug")
    assert builders.server_image_refusal(ours, settings) is None
    refusal = builders.server_image_refusal(serving(FOREIGN), settings)
    assert refusal is not None and FOREIGN in refusal
    assert "registry.example/modelops/inference-server (MODELOPS_ALLOWED_SERVER_IMAGES)" in refusal
    # A repository whose name only starts like the allowed one is another repository.
    lookalike = serving("registry.example/modelops/inference-server-evil:1")
    assert builders.server_image_refusal(lookalike, settings) is not None


def test_the_admin_allows_repositories_exactly_or_by_prefix() -> None:
    settings = Settings(allowed_server_images="registry.example/team/*, other.example/server")
    for image in ("registry.example/team/a/server:1", "other.example/server:3"):
        assert builders.server_image_refusal(serving(image), settings) is None
    for image in ("registry.example/teams/server:1", "other.example/server-2:3", FOREIGN):
        assert builders.server_image_refusal(serving(image), settings) is not None


def test_a_model_naming_another_image_is_refused_and_what_serves_keeps_serving(
    models: Models, kubelet: Kubelet, trained: Any
) -> None:
    deploy_to_ready(models, kubelet, trained, sample("iris"))
    before = json.loads(models.kubectl("get", "deployment", "iris-server", "-o", "json").stdout)

    models.kubectl(
        "patch",
        "mdep",
        "iris",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"image": FOREIGN}}}),
    )

    status = models.wait_for_phase("iris", "Failed")
    assert FOREIGN in status["message"] and "MODELOPS_ALLOWED_SERVER_IMAGES" in status["message"]
    assert models.condition("iris", "Ready")["reason"] == "ImageNotAllowed"
    after = json.loads(models.kubectl("get", "deployment", "iris-server", "-o", "json").stdout)
    assert after["spec"] == before["spec"]
    assert after["status"].get("readyReplicas") == 2


def test_a_new_model_naming_another_image_gets_no_children(models: Models) -> None:
    manifest = sample("iris")
    manifest["spec"]["serving"]["image"] = FOREIGN
    models.apply(manifest)

    status = models.wait_for_phase("iris", "Failed")
    assert FOREIGN in status["message"]
    assert models.jobs("iris") == []
    assert models.kubectl("get", "deployments", "-o", "name").stdout == ""
