"""What the operator asks of the apiserver stays bounded: child watches are filtered on the
server, and a kind that is not served is not looked up on every reconcile."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes
import pytest
from kopf._cogs.structs import references
from modelops_operator import handlers
from modelops_operator.kube import Kube


def test_every_child_watch_is_filtered_by_the_apiserver() -> None:
    settings = kopf.OperatorSettings()
    handlers.watch_only_managed_children(settings)
    watched = kopf.get_default_registry()._watching.get_all_handlers()
    assert watched, "child_changed watches the children"
    for handler in watched:
        selector = handler.selector
        assert selector is not None
        resource = references.Resource(
            group=selector.group or "",
            version=selector.version or "",
            plural=str(selector.any_name),
        )
        assert settings.watching.label_selectors.collect(resource) == [
            "app.kubernetes.io/managed-by=modelops"
        ], f"{resource} is watched cluster-wide and filtered only after receiving"


@pytest.mark.controlplane
def test_a_kind_not_served_is_not_looked_up_again_at_once(
    api_client: kubernetes.client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = Kube(api_client)
    requests: list[str] = []
    call_api = api_client.call_api

    def counted(resource_path: str, *args: Any, **kwargs: Any) -> Any:
        requests.append(resource_path)
        return call_api(resource_path, *args, **kwargs)

    monkeypatch.setattr(api_client, "call_api", counted)
    assert not kube.serves("example.invalid/v1", "Nothing")
    assert requests, "the first miss asks the apiserver"
    requests.clear()
    for _ in range(20):
        assert not kube.serves("example.invalid/v1", "Nothing")
    assert requests == []
    assert kube.serves("apps/v1", "Deployment")
