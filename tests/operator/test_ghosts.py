"""Ghosts (modelops_operator.ghosts): what the watches still show after a pause, or after a
watch listed again on its own, though the apiserver deleted it is found by one listing, the
readers skip it, and the models whose children it was are reconciled at once. The path through a
real apiserver and operator: test_resync.py's drift test, whose Service is deleted during a
pause."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from modelops_operator import children, handlers, reconcile, watched_models
from modelops_operator.ghosts import Ghosts, Watch
from modelops_operator.settings import Settings

MODEL_WATCH = Watch("modelops.dev/v1alpha1", "ModelDeployment")
SERVICE_WATCH = Watch("v1", "Service", "app.kubernetes.io/managed-by=modelops")


def _object(kind: str, namespace: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name, "uid": uid, "labels": {}},
    }


class _Listing:
    """Kube.list over objects by kind; records what was asked."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, str, str, str]] = []

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        self.asked.append((kind, namespace, label_selector, field_selector))
        return [
            found
            for found in self.objects.get(kind, [])
            if namespace in ("", found["metadata"]["namespace"])
        ]


def test_what_the_listing_lacks_is_a_ghost_and_the_readers_skip_it() -> None:
    ghosts = Ghosts()
    iris, wine = _object("M", "ml", "iris", "m1"), _object("M", "ml", "wine", "m2")
    service = _object("Service", "ml", "iris", "s1")
    models = watched_models.WatchedModels(
        {
            ("ml", "iris"): [watched_models.stored(iris)],
            ("ml", "wine"): [watched_models.stored(wine)],
        },
        _Listing({}),  # type: ignore[arg-type]
        ghosts=ghosts,
    )
    watched = children.WatchedChildren(
        {("v1", "Service"): {("ml", "iris"): [children.stored("v1", "Service", service)]}},
        ghosts=ghosts,
    )
    listing = _Listing({"ModelDeployment": [iris]})  # wine and the Service were deleted

    found = ghosts.find(
        listing,  # type: ignore[arg-type]
        [MODEL_WATCH, SERVICE_WATCH],
        models.shown() | watched.shown(),
        clusterwide=False,
    )

    assert found == {"m2", "s1"}
    assert models.keys() == [("ml", "iris")]
    assert models.get("ml", "wine") is None
    assert watched.get("v1", "Service", "ml", "iris", "iris") is None
    assert watched.list("v1", "Service", "ml", "iris") == []
    assert listing.asked == [
        ("ModelDeployment", "ml", "", ""),
        ("Service", "ml", "app.kubernetes.io/managed-by=modelops", ""),
    ], "one listing per watch in each namespace shown, with the watch's selectors"


def test_an_object_made_again_under_its_name_is_no_ghost() -> None:
    ghosts = Ghosts()
    before = _object("Service", "ml", "iris", "s1")
    index: dict[Any, Any] = {("ml", "iris"): [children.stored("v1", "Service", before)]}
    watched = children.WatchedChildren({("v1", "Service"): index}, ghosts=ghosts)
    ghosts.find(
        _Listing({}),  # type: ignore[arg-type]
        [SERVICE_WATCH],
        watched.shown(),
        clusterwide=True,
    )
    assert watched.get("v1", "Service", "ml", "iris", "iris") is None

    again = _object("Service", "ml", "iris", "s2")
    index[("ml", "iris")] = [children.stored("v1", "Service", again)]
    assert watched.get("v1", "Service", "ml", "iris", "iris") == again


def test_each_round_finds_new_ghosts_and_reconciles_their_models_once() -> None:
    ghosts = Ghosts()
    iris, wine = _object("M", "ml", "iris", "m1"), _object("M", "ml", "wine", "m2")
    service = _object("Service", "ml", "iris", "s1")
    deployment = _object("Deployment", "ml", "iris-server", "d1")
    listing = _Listing({"ModelDeployment": [iris, wine], "Service": [service]})
    rechecked: list[tuple[str, str, float]] = []
    world = reconcile.World(
        listing,  # type: ignore[arg-type]
        watched_models.WatchedModels(
            {
                ("ml", "iris"): [watched_models.stored(iris)],
                ("ml", "wine"): [watched_models.stored(wine)],
            },
            listing,  # type: ignore[arg-type]
            ghosts=ghosts,
        ),
        children.WatchedChildren(
            {
                ("v1", "Service"): {("ml", "iris"): [children.stored("v1", "Service", service)]},
                ("apps/v1", "Deployment"): {
                    ("ml", "iris"): [children.stored("apps/v1", "Deployment", deployment)]
                },
            },
            ghosts=ghosts,
        ),
        lambda namespace, name, seconds: rechecked.append((namespace, name, seconds)),
    )
    memo = SimpleNamespace(world=world, ghosts=ghosts, settings=Settings(), sweeps=_NeverDue())

    # The Deployment was deleted while its watch was listing again: no event ever told.
    handlers._after_round(memo)

    assert world.watched.get("apps/v1", "Deployment", "ml", "iris", "iris-server") is None
    assert rechecked == [("ml", "iris", 0)]
    handlers._after_round(memo)
    assert rechecked == [("ml", "iris", 0)], "a ghost already found is not reconciled again"


class _NeverDue:
    def due(self) -> bool:
        return False
