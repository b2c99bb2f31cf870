"""Every model's children as the operator's watches last saw them (kopf indexes, filled in
handlers): a reconcile reads them here instead of asking the apiserver. At a thousand models
those reads were most of the operator's requests, and the apiserver's CPU the limit.

What the watches show may be a moment old. The reconcile is level-based, so that is fine where
a later event of the child brings a later reconcile; where it is not (something that is not
ours under a child's name never reaches these watches), callers ask the apiserver."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from modelops_operator import constants
from modelops_operator.ghosts import Ghosts, Shown

# The kinds watched, by (apiVersion, kind). Each carries the managed-by label, so its watch is
# filtered by the apiserver (handlers.watch_only_managed_children).
WATCHED = (
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    # The models' dashboards and the shared scrape config files.
    ("v1", "ConfigMap"),
)
# Whose spec is never compared with a manifest (created once, or only read): the largest part
# of them, and not kept.
_SPEC_UNUSED = frozenset({("batch/v1", "Job"), ("v1", "Pod")})

# Where the watches keep a child: (namespace, its model's name), or (namespace, "") for the
# ConfigMaps that many models share.
Key = tuple[str, str]
# A child as kept: its name, so that one is found without decoding the others (a model's
# reconcile looks up its scrape file among the 32 shared ones, 36 KB each at a thousand
# models), and its JSON, compact, decoded by the reconcile that reads it (tens of
# microseconds). As parsed dicts, a thousand models' 7,000 children held ~60 MiB of Python's
# small objects (158 MB allocated in pymalloc's pools, 100 MB as strings: the 1,000-model
# benchmark); a string is one allocation, and nothing for the garbage collector to traverse.
Stored = tuple[str, str]
Index = Mapping[Key, Iterable[Stored]]


def key(namespace: str, labels: Mapping[str, str]) -> Key:
    return namespace, labels.get(constants.LABEL_MODEL, "")


def compact(body: Mapping[str, Any], *, spec: bool = True) -> str:
    """An object as JSON without the server-side apply bookkeeping (managedFields, often half
    the object), and without its spec unless `spec`."""
    kept = {field: value for field, value in body.items() if spec or field != "spec"}
    kept["metadata"] = {
        field: value for field, value in body["metadata"].items() if field != "managedFields"
    }
    return json.dumps(kept, separators=(",", ":"))


def stored(api_version: str, kind: str, body: Mapping[str, Any]) -> Stored:
    """What is kept of a watched object: all a reconcile reads, without the specs nobody
    compares."""
    return body["metadata"]["name"], compact(body, spec=(api_version, kind) not in _SPEC_UNUSED)


class WatchedChildren:
    """Reads from the watches' indexes: (apiVersion, kind) to the index of that kind."""

    def __init__(
        self, indexes: Mapping[tuple[str, str], Index], *, ghosts: Ghosts | None = None
    ) -> None:
        self._indexes = indexes
        self._ghosts = Ghosts() if ghosts is None else ghosts

    def watches(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._indexes

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        model: str | None,
        labels: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """The model's children of a kind (model None: the shared ones), with these labels."""
        found = [
            json.loads(child) for _, child in self._stored(api_version, kind, namespace, model)
        ]
        return [
            child
            for child in found
            if child["metadata"].get("uid") not in self._ghosts
            and all(
                (child["metadata"].get("labels") or {}).get(label) == value
                for label, value in (labels or {}).items()
            )
        ]

    def get(
        self, api_version: str, kind: str, namespace: str, model: str | None, name: str
    ) -> dict[str, Any] | None:
        for child_name, child in self._stored(api_version, kind, namespace, model):
            if child_name == name:
                found: dict[str, Any] = json.loads(child)
                return None if found["metadata"].get("uid") in self._ghosts else found
        return None

    def shown(self) -> set[Shown]:
        """Every child the watches show, by namespace and uid."""
        return {
            (namespace, json.loads(child)["metadata"]["uid"])
            for index in self._indexes.values()
            for (namespace, _), stored in list(index.items())
            for _, child in list(stored)
        }

    def owners(self, uids: Collection[str]) -> set[tuple[str, str]]:
        """The models (namespace, name) with a child among `uids`."""
        return {
            (namespace, model)
            for index in self._indexes.values()
            for (namespace, model), stored in list(index.items())
            if model and any(json.loads(child)["metadata"]["uid"] in uids for _, child in stored)
        }

    def _stored(
        self, api_version: str, kind: str, namespace: str, model: str | None
    ) -> tuple[Stored, ...]:
        try:
            store = self._indexes[(api_version, kind)][(namespace, model or "")]
        except KeyError:
            return ()
        # The watches update the index on the event loop while reconciles read it on worker
        # threads: tuple() copies a dict's values in one step of the interpreter.
        return tuple(store)
