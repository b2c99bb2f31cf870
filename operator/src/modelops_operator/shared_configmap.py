"""One ConfigMap that many reconciles edit at once: a scrape config file, where many models have
their job.

Edits are group-committed: whoever holds the write lock applies every edit queued so far in one
read-modify-write, so fifty models starting together cost a few writes, not fifty conflicting
ones. Each write carries the resourceVersion it read; a conflict (another operator replica, a
human) means read again and redo. Every caller learns its own edit's outcome: an edit that
another caller's write carried succeeds or fails with that write, never silently; an edit that
refuses to apply (a ValueError: a full file, say) fails alone, and the others are written.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import kubernetes

from modelops_operator import constants

CONFLICT_ATTEMPTS = 30

Edit = Callable[[dict[str, str]], None]
# On the ConfigMaps the operator creates: made and kept by modelops, never hand-edited.
LABELS = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}


class SharedConfigUnavailable(ValueError):
    """A shared ConfigMap cannot be written for a reason the platform, not the model, must fix."""


@dataclass
class _Submitted:
    edit: Edit
    written: threading.Event = field(default_factory=threading.Event)
    changed: bool = False
    error: BaseException | None = None


class ConfigMapStore(Protocol):
    """What SharedConfigMap needs of the API (Kube has it): ConfigMaps as JSON dicts."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """None where there is none."""

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Refused with a 409 when the manifest's resourceVersion is no longer current."""


class SharedConfigMap:
    def __init__(self, store: ConfigMapStore, namespace: str, name: str) -> None:
        self.store = store
        self.namespace, self.name = namespace, name
        self._queued: list[_Submitted] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def submit(self, edit: Edit) -> bool:
        """Apply `edit`; whether the write that carried it changed the ConfigMap. Raises what
        that write raised."""
        mine = _Submitted(edit)
        with self._queue_lock:
            self._queued.append(mine)
        with self._write_lock:
            # Set: an earlier writer carried this edit along with its own.
            if not mine.written.is_set():
                with self._queue_lock:
                    batch, self._queued = self._queued, []
                self._write_batch(batch)
        if mine.error is not None:
            raise mine.error
        return mine.changed

    def _write_batch(self, batch: list[_Submitted]) -> None:
        try:
            changed = self._write(batch)
        except BaseException as error:
            for submitted in batch:
                submitted.error = error
                submitted.written.set()
            return
        for submitted in batch:
            submitted.changed = changed and submitted.error is None
            submitted.written.set()

    def _write(self, batch: list[_Submitted]) -> bool:
        for attempt in range(CONFLICT_ATTEMPTS):
            current = self.store.get("v1", "ConfigMap", self.namespace, self.name)
            before = dict((current or {}).get("data") or {})
            data = dict(before)
            for submitted in batch:
                # An edit changes `data` only once it succeeds; one that refuses is this
                # caller's alone, judged again on a new read after a conflict.
                try:
                    submitted.error = None
                    submitted.edit(data)
                except ValueError as error:
                    submitted.error = error
            if data == before:
                return False
            try:
                if current is None:
                    self._create(data)
                else:
                    # current's resourceVersion goes along: a write in between is a 409.
                    self.store.replace(current | {"data": data})
                return True
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise kubernetes.client.ApiException(
            status=409,
            reason=f"{self.namespace}/{self.name} kept changing over {CONFLICT_ATTEMPTS} attempts",
        )

    def _create(self, data: dict[str, str]) -> None:
        with namespace_must_exist(self.namespace, f"the shared ConfigMap {self.name}"):
            self.store.create(shared_config_map(self.namespace, self.name, data))


def shared_config_map(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """A ConfigMap the operator keeps for every model, labelled as its own."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
        "data": data,
    }


@contextlib.contextmanager
def namespace_must_exist(namespace: str, what: str) -> Iterator[None]:
    """Creating `what` in `namespace`: a 404 means the namespace is missing, said in words."""
    try:
        yield
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise SharedConfigUnavailable(
                f"namespace {namespace} of {what} does not exist: create it, or point the "
                "operator's setting at another one"
            ) from error
        raise
