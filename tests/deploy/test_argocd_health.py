"""The Argo CD health checks in argocd/health/, run the way Argo CD runs them: the Lua file as a
chunk, with the resource as the global `obj`, returning a table with status and message. Argo
CD's Lua is gopher-lua, a Lua 5.1, so the chunk runs on lupa's Lua 5.1."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_manifests import ARGOCD
from lupa import lua51  # a dev dependency: Argo CD's Lua, 5.1

HEALTH = ARGOCD / "health"
MODEL_HEALTH = HEALTH / "modelops.dev_ModelDeployment.lua"
APPLICATION_HEALTH = HEALTH / "argoproj.io_Application.lua"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"
KEY_PREFIX = "resource.customizations.health."


def to_lua(runtime: Any, value: Any) -> Any:
    """JSON-like Python data as Argo CD hands it to Lua: objects and arrays become tables
    (arrays 1-based), JSON null and absent fields are nil."""
    if isinstance(value, dict):
        return runtime.table_from(
            {k: to_lua(runtime, v) for k, v in value.items() if v is not None}
        )
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, item) for item in value])
    return value


def assess(script: Path, obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(script.read_text())
    assert lua51.lua_type(result) == "table", "a health script must return a table"
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def model(generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ml", "generation": generation},
        "spec": {"training": {"dataset": {"builtin": "iris"}}},
    }
    if status is not None:
        body["status"] = status
    return body


def condition(kind: str, ok: bool, generation: int, message: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": "Test",
        "message": message,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


def status(
    phase: str, message: str, generation: int, ready: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "phase": phase,
        "message": message,
        "observedGeneration": generation,
        "conditions": [
            condition("Trained", ready, generation),
            condition("Deployed", ready, generation),
            condition("Ready", ready, generation, message),
        ],
        **extra,
    }


def test_no_status_is_progressing() -> None:
    health = assess(MODEL_HEALTH, model())
    assert health["status"] == "Progressing"
    assert health["message"]


def test_empty_status_is_progressing() -> None:
    assert assess(MODEL_HEALTH, model(status={}))["status"] == "Progressing"


@pytest.mark.parametrize("phase", ["Pending", "Training", "Deploying"])
def test_working_phases_are_progressing_with_the_operators_message(phase: str) -> None:
    message = f"{phase.lower()}: training Job iris-train-0123abcd is running"
    health = assess(MODEL_HEALTH, model(3, status(phase, message, 3)))
    assert health == {"status": "Progressing", "message": message}


def test_ready_for_the_current_generation_is_healthy() -> None:
    message = "serving v20250101-000000-abcdef12 (accuracy=0.97), 2/2 replicas ready"
    health = assess(MODEL_HEALTH, model(2, status("Ready", message, 2, ready=True)))
    assert health == {"status": "Healthy", "message": message}


def test_ready_condition_of_an_older_generation_is_progressing() -> None:
    # The user pushed a new spec (generation 3); the operator has not acted on it yet.
    stale = status("Ready", "serving v1, 2/2 replicas ready", 2, ready=True)
    health = assess(MODEL_HEALTH, model(3, stale))
    assert health["status"] == "Progressing"
    assert "generation 3" in health["message"]


def test_ready_condition_behind_the_status_is_progressing() -> None:
    # observedGeneration is current, but the Ready condition still speaks of generation 2.
    mixed = status("Ready", "serving v1, 2/2 replicas ready", 3, ready=True)
    mixed["conditions"][-1]["observedGeneration"] = 2
    assert assess(MODEL_HEALTH, model(3, mixed))["status"] == "Progressing"


def test_ready_false_is_not_healthy() -> None:
    not_ready = status("Ready", "serving v1", 1, ready=False)
    assert assess(MODEL_HEALTH, model(1, not_ready))["status"] == "Progressing"


def test_failed_is_degraded_with_the_operators_message() -> None:
    message = "training Job iris-train-0123abcd failed: hyperparameter 'max_depth' must be an int"
    health = assess(MODEL_HEALTH, model(4, status("Failed", message, 4)))
    assert health == {"status": "Degraded", "message": message}


def test_failed_for_an_older_generation_is_progressing() -> None:
    # A fix was pushed: the failure is about the old spec.
    health = assess(MODEL_HEALTH, model(5, status("Failed", "invalid spec", 4)))
    assert health["status"] == "Progressing"


def test_the_script_does_not_change_obj() -> None:
    body = model(2, status("Ready", "ok", 2, ready=True))
    before = copy.deepcopy(body)
    assess(MODEL_HEALTH, body)
    assert body == before


def test_statuses_are_argo_cds_vocabulary() -> None:
    seen = {
        assess(MODEL_HEALTH, body)["status"]
        for body in (
            model(),
            model(1, status("Training", "t", 1)),
            model(1, status("Ready", "r", 1, ready=True)),
            model(1, status("Failed", "f", 1)),
        )
    }
    assert seen == {"Progressing", "Healthy", "Degraded"}


def application(
    health: dict[str, str] | None, sync: str | None = None, operation: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}
    body["metadata"] = {"name": "modelops-platform", "namespace": "argocd", "generation": 1}
    status: dict[str, Any] = {}
    if health is not None:
        status["health"] = health
    if sync is not None:
        status["sync"] = {"status": sync}
    if operation is not None:
        status["operationState"] = {"phase": operation}
    if status:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (application(None), "Progressing"),
        (application({"status": "Healthy"}, "Synced"), "Healthy"),
        (application({"status": "Healthy"}, "Synced", "Succeeded"), "Healthy"),
        # Not synced yet (a new Application reads Healthy before its first sync), or syncing.
        (application({"status": "Healthy"}), "Progressing"),
        (application({"status": "Healthy"}, "OutOfSync"), "Progressing"),
        (application({"status": "Healthy"}, "Synced", "Running"), "Progressing"),
        (application({"status": "Missing"}, "OutOfSync"), "Progressing"),
        (application({"status": "Progressing"}, "Synced"), "Progressing"),
        (application({"status": "Degraded", "message": "one model failed"}, "Synced"), "Degraded"),
        (application({"status": "Degraded"}, "OutOfSync", "Running"), "Degraded"),
    ],
)
def test_application_is_healthy_once_synced_and_healthy(app: dict[str, Any], expected: str) -> None:
    assert assess(APPLICATION_HEALTH, app)["status"] == expected


def test_configmap_patch_carries_every_health_script_unchanged() -> None:
    """argocd/health/*.lua are the sources; argocd-cm-patch.yaml must hold exact copies."""
    data = yaml.safe_load(CM_PATCH.read_text())["data"]
    scripts = {
        f"{KEY_PREFIX}{path.stem}": path.read_text() for path in sorted(HEALTH.glob("*.lua"))
    }
    assert scripts, "no health scripts"
    in_patch = {key: value for key, value in data.items() if key.startswith(KEY_PREFIX)}
    assert in_patch.keys() == scripts.keys()
    for key, script in scripts.items():
        assert in_patch[key] == script, (
            f"{key} in {CM_PATCH.name} differs from argocd/health/{key.removeprefix(KEY_PREFIX)}.lua: "
            "copy the .lua file into the patch (indented under the key)"
        )


def test_configmap_patch_is_for_argo_cds_configmap() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"], patch["metadata"]["namespace"]) == (
        "ConfigMap",
        "argocd-cm",
        "argocd",
    )
