"""Rechecks: a reconcile asked for from a reconcile's thread runs on the loop, once, at the
soonest time asked for."""

from __future__ import annotations

import asyncio
import contextvars

from modelops_operator.rechecks import Rechecks

POSTING_TO = contextvars.ContextVar("posting_to", default="nowhere")


def run_rechecks(*asks: tuple[str, float], then_cancel: bool = False) -> list[tuple[str, float]]:
    """Ask for each (model, seconds) from a worker thread, in order; which models were
    reconciled, and when (seconds after the first ask)."""

    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reconciled: list[tuple[str, float]] = []

        async def reconcile(namespace: str, name: str) -> None:
            reconciled.append((f"{namespace}/{name}@{POSTING_TO.get()}", loop.time() - started))

        rechecks = Rechecks(loop, reconcile)

        def ask() -> None:
            POSTING_TO.set("kopf's queue")
            for name, seconds in asks:
                rechecks.after("ml", name, seconds)

        await asyncio.to_thread(contextvars.copy_context().run, ask)
        if then_cancel:
            rechecks.cancel()
        await asyncio.sleep(max(seconds for _, seconds in asks) + 0.3)
        return reconciled

    return asyncio.run(scenario())


def test_a_model_is_reconciled_once_at_the_soonest_time_asked_for_in_its_askers_context() -> None:
    reconciled = run_rechecks(("iris", 1.0), ("iris", 0.1), ("iris", 0.8), ("wine", 0.2))
    assert [model for model, _ in reconciled] == ["ml/iris@kopf's queue", "ml/wine@kopf's queue"]
    iris_at = reconciled[0][1]
    assert 0.1 <= iris_at < 0.8


def test_cancelled_rechecks_never_run() -> None:
    assert run_rechecks(("iris", 0.1), then_cancel=True) == []
