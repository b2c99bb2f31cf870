"""What the operator asks of the apiserver stays bounded: child watches are filtered on the
server, a settled model's resync reads the model and its children from the watches, and a kind
that is not served is not looked up on every reconcile."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes
import pytest
from conftest import (  # type: ignore[import-not-found]
    SETTINGS,
    Models,
    deploy_to_ready,
    sample,
)
from kopf._cogs.structs import references
from modelops_envtest.kubelet import Kubelet
from modelops_operator import children, constants, handlers, registration, watched_models
from modelops_operator.kube import Kube
from modelops_operator.reconcile import ModelTurns, World, reconcile


def test_every_child_watch_is_filtered_by_the_apiserver() -> None:
    settings = kopf.OperatorSettings()
    handlers.watch_only_managed_children(settings)
    registry = kopf.get_default_registry()
    watched = [*registry._watching.get_all_handlers(), *registry._indexing.get_all_handlers()]
    assert watched, "child_changed and the children's indexes watch the children"
    for handler in watched:
        selector = handler.selector
        assert selector is not None
        if selector.group == constants.GROUP:
            continue  # the models' own index: every ModelDeployment is the operator's
        resource = references.Resource(
            group=selector.group or "",
            version=selector.version or "",
            plural=str(selector.any_name),
        )
        assert settings.watching.label_selectors.collect(resource) == [
            "app.kubernetes.io/managed-by=modelops"
        ], f"{resource} is watched cluster-wide and filtered only after receiving"
    pods = references.Resource(group="", version="v1", plural="pods")
    assert settings.watching.field_selectors.collect(pods) == ["status.phase!=Succeeded"], (
        "finished training pods are not watched"
    )


def _counting(
    api_client: kubernetes.client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The requests made through `api_client` from now on: method and path."""
    requests: list[str] = []
    call_api = api_client.call_api

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        requests.append(f"{method} {url.split('?')[0].split('://')[-1].partition('/')[2]}")
        return call_api(method, url, *args, **kwargs)

    monkeypatch.setattr(api_client, "call_api", counted)
    return requests


MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in handlers.MANAGED.items())


def _as_watched(kube: Kube, namespaces: list[str]) -> children.WatchedChildren:
    """What the operator's watches hold, listed the way they list: the managed-by selector."""
    indexes: dict[tuple[str, str], dict[children.Key, list[children.Stored]]] = {}
    for api_version, kind in children.WATCHED:
        index = indexes.setdefault((api_version, kind), {})
        for namespace in namespaces:
            for body in kube.list(api_version, kind, namespace, MANAGED_SELECTOR):
                key = children.key(namespace, body["metadata"].get("labels") or {})
                # As a watch delivers it: a listing's items lack their kind.
                watched = body | {"apiVersion": api_version, "kind": kind}
                index.setdefault(key, []).append(children.stored(api_version, kind, watched))
    return children.WatchedChildren(indexes)


def _models_as_watched(kube: Kube, namespace: str) -> watched_models.WatchedModels:
    listed = kube.list(constants.API_VERSION, constants.KIND, namespace, "")
    # As a watch delivers them: a listing's items lack their kind.
    kind = {"apiVersion": constants.API_VERSION, "kind": constants.KIND}
    index = {
        (namespace, body["metadata"]["name"]): [watched_models.stored(body | kind)]
        for body in listed
    }
    return watched_models.WatchedModels(index, kube)


@pytest.mark.controlplane
def test_a_settled_models_resync_asks_nothing_of_the_apiserver(
    models: Models,
    kubelet: Kubelet,
    trained: Any,
    monitoring_namespace: str,
    api_client: kubernetes.client.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model, its claim, Job, Deployment, Service, dashboard and scrape file come from the
    watches, and nothing is written where nothing changed: a settled fleet's resyncs cost no
    requests."""
    deploy_to_ready(models, kubelet, trained, sample("iris"))
    kube = Kube(api_client)
    world = World(
        kube,
        _models_as_watched(kube, models.namespace),
        _as_watched(kube, [models.namespace, monitoring_namespace]),
        recheck=lambda *_: None,
    )
    # The scrape files' placement key is read once per process, as the operator's first
    # reconcile did.
    registration.keyed(kube, SETTINGS)
    requests = _counting(api_client, monkeypatch)
    reconcile(world, SETTINGS, ModelTurns(), models.namespace, "iris")
    assert requests == []


@pytest.mark.controlplane
def test_a_kind_not_served_is_not_looked_up_again_at_once(
    api_client: kubernetes.client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = Kube(api_client)
    requests = _counting(api_client, monkeypatch)
    assert not kube.serves("example.invalid/v1", "Nothing")
    assert requests, "the first miss asks the apiserver"
    requests.clear()
    for _ in range(20):
        assert not kube.serves("example.invalid/v1", "Nothing")
    assert requests == []
    assert kube.serves("apps/v1", "Deployment")
