"""The ModelDeployments as the operator's watch last saw them (a kopf index), so that a reconcile
reads its model without a request. At a thousand models those GETs were 14 of the operator's 33
requests per model while they were made, and the only request of a settled model's resync.

The watch shows a model a moment late. That matters for what the operator itself wrote last: a
reconcile that follows its predecessor's status write must see that write, or it would write
the same status again and post the same phase change twice. So the model as the status write
returned it is read instead, until the watch brings that write back (by its resourceVersion).
A watch delivers an object's changes in the order they were made, so from then on it shows the
model at least as new. Should that echo not come (a watch restarted past it), the apiserver is
asked, ECHO_TIMEOUT_SECONDS after the write."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelops_operator import children
from modelops_operator.ghosts import Ghosts, Shown
from modelops_operator.kube import Kube

# How long a write's echo may take under load: kopf waits as long for its own patches' echoes
# (handlers.configure gives it this value).
ECHO_TIMEOUT_SECONDS = 30.0

# (namespace, name)
Key = tuple[str, str]
# A model as kept: compact JSON (children.compact), decoded when read.
Stored = str
Index = Mapping[Key, Iterable[Stored]]


def stored(body: Mapping[str, Any]) -> Stored:
    return children.compact(body)


@dataclasses.dataclass(frozen=True)
class _Written:
    resource_version: str
    body: Stored
    at: float


class WatchedModels:
    """Reads of the models from the watch's index, and the status writes they must reflect."""

    def __init__(
        self,
        index: Index,
        kube: Kube,
        *,
        ghosts: Ghosts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = index
        self._kube = kube
        self._ghosts = Ghosts() if ghosts is None else ghosts
        self._clock = clock
        self._lock = threading.Lock()
        # Status writes whose echo the watch has not delivered yet.
        self._written: dict[Key, _Written] = {}
        # For a write under way: the versions the watch delivered meanwhile, among them
        # possibly the write's own echo, before its response is in.
        self._delivered_meanwhile: dict[Key, list[str]] = {}

    def seen(self, namespace: str, name: str, resource_version: str) -> None:
        """What the watch delivered (the models' index calls it for every event)."""
        key = (namespace, name)
        with self._lock:
            meanwhile = self._delivered_meanwhile.get(key)
            if meanwhile is not None:
                meanwhile.append(resource_version)
            written = self._written.get(key)
            if written is not None and written.resource_version == resource_version:
                del self._written[key]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = (namespace, name)
        with self._lock:
            written = self._written.get(key)
            echo_overdue = written is not None and self._clock() - written.at > ECHO_TIMEOUT_SECONDS
            if echo_overdue:
                del self._written[key]
        if echo_overdue:
            return self._kube.get_model(namespace, name)
        # list() copies the index's values in one step: the watch updates it meanwhile.
        found = [written.body] if written is not None else list(self._index.get(key) or ())
        model: dict[str, Any] | None = json.loads(found[0]) if found else None
        if model is not None and model["metadata"].get("uid") in self._ghosts:
            return None
        return model

    def keys(self) -> list[Key]:
        """Every model the watch shows, but its ghosts."""
        # list() takes the index's keys in one step: the watch updates it meanwhile.
        keys = list(self._index)
        if not self._ghosts:
            return keys
        return [key for key in keys if self.get(*key) is not None]

    def shown(self) -> set[Shown]:
        """Every model the watch shows, by namespace and uid."""
        return {
            (namespace, json.loads(body)["metadata"]["uid"])
            for (namespace, _), bodies in list(self._index.items())
            for body in list(bodies)
        }

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """A merge patch of the model's status, read back by get() from now on. One reconcile
        of a model runs at a time (ModelTurns), so a model has one write under way at most."""
        key = (namespace, name)
        with self._lock:
            self._delivered_meanwhile[key] = []
        try:
            written = self._kube.patch_model_status(namespace, name, status)
        finally:
            with self._lock:
                delivered = self._delivered_meanwhile.pop(key)
        resource_version = written["metadata"]["resourceVersion"]
        if resource_version in delivered:
            return
        with self._lock:
            self._written[key] = _Written(resource_version, stored(written), self._clock())
