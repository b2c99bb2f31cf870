"""The children as the watches keep them (modelops_operator.children): found by model, name and
labels, and kept without what no reconcile reads."""

from __future__ import annotations

import json
from typing import Any

from modelops_operator import builders, children, constants


def _child(kind: str, name: str, model: str, **labels: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": builders.labels(model, "server") | labels,
            "managedFields": [{"manager": "modelops-operator"}],
        },
        "spec": {"containers": []},
        "status": {"phase": "Running"},
    }


def test_what_is_kept_of_a_pod_and_of_a_deployment() -> None:
    pod = json.loads(children.stored("v1", "Pod", _child("Pod", "iris-1", "iris"))[1])
    assert pod.keys() == {"kind", "metadata", "status"}
    assert "managedFields" not in pod["metadata"]
    deployment = json.loads(
        children.stored("apps/v1", "Deployment", _child("Deployment", "d", "iris"))[1]
    )
    assert deployment["spec"] == {"containers": []}, "compared with the manifest on apply"


def test_children_are_found_by_model_name_and_labels() -> None:
    pods = [
        _child("Pod", "iris-1", "iris", **{"job-name": "iris-train-1"}),
        _child("Pod", "iris-2", "iris", **{"job-name": "iris-train-2"}),
    ]
    wine = _child("Pod", "wine-1", "wine")
    index: dict[children.Key, list[children.Stored]] = {}
    for pod in [*pods, wine]:
        index.setdefault(children.key("ml", pod["metadata"]["labels"]), []).append(
            children.stored("v1", "Pod", pod)
        )
    shared = {"kind": "ConfigMap", "metadata": {"name": "scrape-00", "labels": {}}}
    watched = children.WatchedChildren(
        {
            ("v1", "Pod"): index,
            ("v1", "ConfigMap"): {
                ("modelops-system", ""): [children.stored("v1", "ConfigMap", shared)]
            },
        }
    )
    kept = [json.loads(children.stored("v1", "Pod", pod)[1]) for pod in pods]
    assert watched.list("v1", "Pod", "ml", "iris") == kept
    assert watched.list("v1", "Pod", "ml", "iris", {"job-name": "iris-train-2"}) == [kept[1]]
    assert watched.get("v1", "Pod", "ml", "wine", "wine-1") == json.loads(
        children.stored("v1", "Pod", wine)[1]
    )
    assert watched.get("v1", "Pod", "ml", "iris", "wine-1") is None
    assert watched.list("v1", "Pod", "other", "iris") == []
    assert watched.get("v1", "ConfigMap", "modelops-system", None, "scrape-00") == shared
    assert not watched.watches("v1", "Service")
    assert watched.get("v1", "Service", "ml", "iris", "iris") is None


def test_a_child_is_kept_under_its_model_and_a_shared_one_under_no_model() -> None:
    assert children.key("ml", {constants.LABEL_MODEL: "iris"}) == ("ml", "iris")
    assert children.key("ml", {}) == ("ml", "")
