"""Every model's children as the operator's watches last saw them (kopf indexes, filled in
handlers): a reconcile reads them here instead of asking the apiserver. At a thousand models
those reads were most of the operator's requests, and the apiserver's CPU the limit.

What the watches show may be a moment old. The reconcile is level-based, so that is fine where
a later event of the child brings a later reconcile; where it is not (something that is not
ours under a child's name never reaches these watches), callers ask the apiserver."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from modelops_operator import constants

# The kinds watched, by (apiVersion, kind). Each carries the managed-by label, so its watch is
# filtered by the apiserver (handlers.watch_only_managed_children).
WATCHED = (
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    # The models' dashboards and the shared scrape config files.
    ("v1", "ConfigMap"),
)
# Whose spec is never compared with a manifest (created once, or only read): the largest part
# of them, and not kept.
_SPEC_UNUSED = frozenset({("batch/v1", "Job"), ("v1", "Pod")})

# Where the watches keep a child: (namespace, its model's name), or (namespace, "") for the
# ConfigMaps that many models share.
Key = tuple[str, str]
# A child as kept: its JSON, compact, decoded by the reconcile that reads it (tens of
# microseconds). As parsed dicts, a thousand models' 7,000 children held ~60 MiB of Python's
# small objects (158 MB allocated in pymalloc's pools, 100 MB as strings: the 1,000-model
# benchmark); a string is one allocation, and nothing for the garbage collector to traverse.
Stored = str
Index = Mapping[Key, Iterable[Stored]]


def key(namespace: str, labels: Mapping[str, str]) -> Key:
    return namespace, labels.get(constants.LABEL_MODEL, "")


def stored(api_version: str, kind: str, body: Mapping[str, Any]) -> Stored:
    """What is kept of a watched object: all a reconcile reads, without the server-side apply
    bookkeeping (managedFields, often half the object) and the specs nobody compares."""
    unused = {"spec"} if (api_version, kind) in _SPEC_UNUSED else set()
    kept = {field: value for field, value in body.items() if field not in unused}
    kept["metadata"] = {
        field: value for field, value in body["metadata"].items() if field != "managedFields"
    }
    return json.dumps(kept, separators=(",", ":"))


class WatchedChildren:
    """Reads from the watches' indexes: (apiVersion, kind) to the index of that kind."""

    def __init__(self, indexes: Mapping[tuple[str, str], Index]) -> None:
        self._indexes = indexes

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
        try:
            store = self._indexes[(api_version, kind)][(namespace, model or "")]
        except KeyError:
            return []
        # The watches update the index on the event loop while reconciles read it on worker
        # threads: list() copies a dict's values in one step of the interpreter.
        found = [json.loads(child) for child in list(store)]
        return [
            child
            for child in found
            if all(
                (child["metadata"].get("labels") or {}).get(label) == value
                for label, value in (labels or {}).items()
            )
        ]

    def get(
        self, api_version: str, kind: str, namespace: str, model: str | None, name: str
    ) -> dict[str, Any] | None:
        return next(
            (
                child
                for child in self.list(api_version, kind, namespace, model)
                if child["metadata"]["name"] == name
            ),
            None,
        )
