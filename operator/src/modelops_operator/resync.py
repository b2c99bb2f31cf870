"""The resync: every model reconciled at least once per period, by one loop that walks the
models the watch shows, evenly spaced over the period.

Not kopf's timers: a kopf timer keeps, for every model and for as long as it exists, the model's
body as kopf parsed it and two tasks. At a thousand models that was about 50 MiB of the
operator's peak memory and 5% of a core at idle; the loop reads the models from the watch's
index, where they are kept compact anyway.

kopf pauses its handlers (and would pause its timers) while a peer outranks this replica in the
peering object: a newer replica, or `kopf freeze`. The loop reads the same object, at most every
PEERING_RECHECK_SECONDS, and waits likewise: a paused replica's watches stop, and what it would
write from them is stale.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

from modelops_operator.kube import Kube

logger = logging.getLogger(__name__)

PEERING_API_VERSION = "kopf.dev/v1"
PEERING_RECHECK_SECONDS = 5.0

# (namespace, name)
Key = tuple[str, str]


def outranked(peering: Mapping[str, Any] | None, priority: int, now: datetime.datetime) -> bool:
    """Whether a live peer in a kopf peering object's status has a higher priority than
    `priority`: kopf's own rule for pausing. A peer is live until its lastseen plus its
    lifetime; its own record (the same priority) never outranks."""
    peers = (peering or {}).get("status") or {}
    for record in peers.values():
        if not isinstance(record, Mapping) or "lastseen" not in record:
            continue
        lastseen = datetime.datetime.fromisoformat(record["lastseen"])
        deadline = lastseen + datetime.timedelta(seconds=int(record.get("lifetime", 60)))
        if deadline > now and int(record.get("priority", 0)) > priority:
            return True
    return False


class Peering:
    """Whether this replica leads, by the peering object(s) kopf meets its peers at: the
    cluster-wide one, or one in each namespace of a namespaced operator (kopf pauses wholly if
    any of them says so)."""

    def __init__(
        self,
        kube: Kube,
        name: str,
        priority: int,
        *,
        clusterwide: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._name = name
        self._priority = priority
        self._clusterwide = clusterwide
        self._clock = clock
        self._checked: tuple[float, bool] | None = None

    def leads(self, namespaces: Iterable[str]) -> bool:
        """Blocking (a request at most every PEERING_RECHECK_SECONDS): run it on a thread.
        A peering object that cannot be read does not pause the loop, as it does not pause
        kopf's handlers."""
        now = self._clock()
        if self._checked is not None and now - self._checked[0] < PEERING_RECHECK_SECONDS:
            return self._checked[1]
        scopes = [""] if self._clusterwide else sorted(set(namespaces))
        kind = "ClusterKopfPeering" if self._clusterwide else "KopfPeering"
        wall = datetime.datetime.now(datetime.UTC)
        try:
            leading = not any(
                outranked(
                    self._kube.get(PEERING_API_VERSION, kind, scope, self._name),
                    self._priority,
                    wall,
                )
                for scope in scopes
            )
        except Exception as error:  # the apiserver briefly unwell: act as kopf does meanwhile
            logger.warning(f"reading the peering object {self._name} failed: {error}")
            leading = True
        self._checked = (now, leading)
        return leading


class Once:
    """A task started at most once, by whichever caller comes first. Held in kopf's memo, of
    which every object's handlers get a shallow copy: an attribute set from a handler would be
    that object's alone, this object's state is everyone's."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(run())
            self._task.add_done_callback(_log_failure)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the resync loop stopped", exc_info=task.exception())


async def resync_forever(
    period: float,
    keys: Callable[[], list[Key]],
    leads: Callable[[list[str]], Awaitable[bool]],
    reconcile: Callable[[Key], Awaitable[None]],
    after_round: Callable[[], Awaitable[None]],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Reconcile each of keys() once per `period`, the n models of a round `period / n` apart,
    and after_round() at its end, while this replica leads (`leads` is given the models'
    namespaces). A round that falls behind (slow writes) goes on without pausing, and the next
    starts when it ends. `reconcile` and `after_round` handle their own errors; a `keys()`
    that fails (it may ask the apiserver about a ghost, on a worker thread) costs one period,
    never the loop."""
    while True:
        started = clock()
        try:
            models = await asyncio.to_thread(keys)
        except Exception:
            logger.exception("listing the models to resync failed; trying again in a period")
            await _sleep_until(started + period, clock)
            continue
        namespaces = sorted({namespace for namespace, _ in models})
        for position, key in enumerate(models):
            await _sleep_until(started + position * period / len(models), clock)
            await _until_leading(leads, namespaces)
            await reconcile(key)
        await _sleep_until(started + period, clock)
        await _until_leading(leads, namespaces)
        await after_round()


async def _until_leading(
    leads: Callable[[list[str]], Awaitable[bool]], namespaces: list[str]
) -> None:
    while not await leads(namespaces):
        await asyncio.sleep(PEERING_RECHECK_SECONDS)


async def _sleep_until(moment: float, clock: Callable[[], float]) -> None:
    delay = moment - clock()
    if delay > 0:
        await asyncio.sleep(delay)
