"""A model's turns (modelops_operator.reconcile.ModelTurns): one reconcile at a time, a child's
event joins a claim that has not started reading, and never one that has."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from modelops_operator import handlers, registration
from modelops_operator.reconcile import LastingFailures, ModelTurns


def test_a_childs_event_joins_a_claim_that_has_not_started() -> None:
    turns = ModelTurns()
    waiting = turns.claim("ml", "iris")

    assert waiting is not None
    assert turns.claim("ml", "iris", coalesce=True) is None
    assert turns.claim("ml", "wine", coalesce=True) is not None, "another model has its own"
    assert turns.claim("ml", "iris") is not None, "the model's own triggers always queue"


def test_an_event_during_a_reconcile_gets_a_reconcile_of_its_own() -> None:
    """The running reconcile may have read the world before the event's change."""
    turns = ModelTurns()
    running = turns.claim("ml", "iris")
    assert running is not None
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(10)

    thread = threading.Thread(target=running.run, args=(work,))
    thread.start()
    assert started.wait(10)
    during = turns.claim("ml", "iris", coalesce=True)
    joined = turns.claim("ml", "iris", coalesce=True)
    release.set()
    thread.join(10)

    assert during is not None, "queued behind the running reconcile"
    assert joined is None, "joins the queued one"
    order: list[str] = []
    during.run(lambda: order.append("after"))
    assert order == ["after"]


def test_one_reconcile_at_a_time_and_no_model_is_remembered_after() -> None:
    turns = ModelTurns()
    inside, most = 0, 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.01)
        with guard:
            inside -= 1

    claims = [turns.claim("ml", "iris") for _ in range(8)]
    threads = [threading.Thread(target=claim.run, args=(work,)) for claim in claims if claim]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert (most, len(threads)) == (1, 8)
    assert len(turns) == 0


def test_a_deletion_waits_for_the_reconcile_going(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconcile writes the model's scrape job as the model is deleted: removed first, the
    job would come back after. The deletion takes its turn behind the reconcile."""
    turns = ModelTurns()
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def reconcile_writing_the_scrape_job() -> None:
        started.set()
        release.wait(10)
        order.append("the reconcile wrote the scrape job")

    reconciling = threading.Thread(
        target=turns.queue("ml", "iris").run, args=(reconcile_writing_the_scrape_job,)
    )
    reconciling.start()
    assert started.wait(10)
    monkeypatch.setattr(
        registration, "forget", lambda *_: order.append("the deletion removed the scrape job")
    )
    memo = SimpleNamespace(
        turns=turns, world=SimpleNamespace(kube=None, failures=LastingFailures()), settings=None
    )
    deleting = threading.Thread(
        target=handlers.model_deleted,
        kwargs={"name": "iris", "namespace": "ml", "body": {}, "retry": 0, "memo": memo,
                "logger": None},
    )  # fmt: skip
    deleting.start()
    deleting.join(0.5)
    assert deleting.is_alive(), "the deletion waits for the reconcile going"
    release.set()
    reconciling.join(10)
    deleting.join(10)
    assert order == ["the reconcile wrote the scrape job", "the deletion removed the scrape job"]
