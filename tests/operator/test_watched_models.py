"""The models as the watch shows them (modelops_operator.watched_models), and the operator's own
status writes, which a reconcile sees before the watch brings them back."""

from __future__ import annotations

from typing import Any

from modelops_operator import watched_models


def _model(resource_version: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ml",
            "name": "iris",
            "resourceVersion": resource_version,
            "managedFields": [{"manager": "kubectl"}],
        },
        "status": {"phase": phase},
    }


class _Apiserver:
    """What WatchedModels asks of Kube: the status patch answers with the model as written, the
    GET with the model as the apiserver has it now. The watch's deliveries during a write are
    played by `during_patch`."""

    def __init__(self) -> None:
        self.current = _model("7", "Ready")
        self.gets = 0
        self.during_patch: list[str] = []
        self.models: watched_models.WatchedModels | None = None

    def patch_model_status(self, namespace: str, name: str, status: dict[str, Any]) -> Any:
        assert self.models is not None
        for resource_version in self.during_patch:
            self.models.seen(namespace, name, resource_version)
        return _model("5", status["phase"])

    def get_model(self, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return self.current


class _Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _watched(
    index: dict[watched_models.Key, list[str]],
) -> tuple[watched_models.WatchedModels, _Apiserver, _Clock]:
    apiserver, clock = _Apiserver(), _Clock()
    models = watched_models.WatchedModels(index, apiserver, clock=clock)  # type: ignore[arg-type]
    apiserver.models = models
    return models, apiserver, clock


def _phase(models: watched_models.WatchedModels) -> Any:
    model = models.get("ml", "iris")
    return model and model["status"]["phase"]


def test_a_model_is_read_from_the_watch_without_its_managed_fields() -> None:
    models, apiserver, _ = _watched(
        {("ml", "iris"): [watched_models.stored(_model("4", "Training"))]}
    )
    model = models.get("ml", "iris")
    assert model is not None
    assert model["status"] == {"phase": "Training"}
    assert "managedFields" not in model["metadata"]
    assert models.get("ml", "wine") is None
    assert models.keys() == [("ml", "iris")]
    assert apiserver.gets == 0


def test_the_operators_status_write_is_read_until_the_watch_brings_it_back() -> None:
    index = {("ml", "iris"): [watched_models.stored(_model("4", "Training"))]}
    models, apiserver, _ = _watched(index)
    models.patch_status("ml", "iris", {"phase": "Ready"})
    assert _phase(models) == "Ready", "the watch still shows version 4"
    models.seen("ml", "iris", "4")
    assert _phase(models) == "Ready", "an event from before the write"
    index[("ml", "iris")] = [watched_models.stored(_model("5", "Ready") | {"spec": {"x": 1}})]
    models.seen("ml", "iris", "5")
    model = models.get("ml", "iris")
    assert model is not None and model["spec"] == {"x": 1}, "the echo came: the watch again"
    assert apiserver.gets == 0


def test_an_echo_that_came_before_the_writes_answer_is_not_waited_for() -> None:
    index = {("ml", "iris"): [watched_models.stored(_model("6", "Failed"))]}
    models, apiserver, _ = _watched(index)
    apiserver.during_patch = ["5", "6"]
    models.patch_status("ml", "iris", {"phase": "Ready"})
    assert _phase(models) == "Failed", "version 6 came after the write, and the watch has it"


def test_an_echo_that_never_comes_sends_the_read_to_the_apiserver() -> None:
    index = {("ml", "iris"): [watched_models.stored(_model("4", "Training"))]}
    models, apiserver, clock = _watched(index)
    models.patch_status("ml", "iris", {"phase": "Ready"})
    clock.now += watched_models.ECHO_TIMEOUT_SECONDS + 1
    assert _phase(models) == "Ready"
    assert apiserver.gets == 1
    assert _phase(models) == "Training", "asked once; then the watch again"
    assert apiserver.gets == 1
