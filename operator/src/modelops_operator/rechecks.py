"""Reconciles due later, for news that no watch brings: asked for from the reconcile threads,
run on the operator's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

Key = tuple[str, str]


class Rechecks:
    """`after(namespace, name, seconds)`, from any thread: `reconcile(namespace, name)` runs on
    `loop` that much later. A model has one due at a time, the soonest asked for."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reconcile: Callable[[str, str], Coroutine[Any, Any, None]],
    ) -> None:
        self._loop = loop
        self._reconcile = reconcile
        self._due: dict[Key, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    def after(self, namespace: str, name: str, seconds: float) -> None:
        # The timer, then the task, keep the caller's context: a reconcile's is kopf's, where
        # kopf.event posts.
        self._loop.call_soon_threadsafe(self._due_in, (namespace, name), seconds)

    def _due_in(self, key: Key, seconds: float) -> None:
        due = self._due.get(key)
        if due is not None:
            if due.when() <= self._loop.time() + seconds:
                return
            due.cancel()
        self._due[key] = self._loop.call_later(seconds, self._run, key)

    def _run(self, key: Key) -> None:
        del self._due[key]
        task = self._loop.create_task(self._reconcile(*key))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def cancel(self) -> None:
        for due in self._due.values():
            due.cancel()
        self._due.clear()
        for task in self._running:
            task.cancel()
