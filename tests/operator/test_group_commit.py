"""The group commit of shared ConfigMap edits (modelops_operator.shared_configmap): an edit that
another caller's write carried shares that write's fate, success or failure."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import kubernetes
import pytest
from modelops_operator.monitoring.prometheus import model_of_job
from modelops_operator.shared_configmap import SharedConfigMap


class SlowFailingStore:
    """A ConfigMap store stand-in: the first read waits until released; every replace after
    the first fails with a 500, as an apiserver having a bad moment would."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Event()
        self.replaced = 0
        self.stored: dict[str, Any] = {"metadata": {"name": "shared"}, "data": {}}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if not self.reading.is_set():
            self.reading.set()
            self.release.wait(10)
        return copy.deepcopy(self.stored)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("the ConfigMap exists")

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.replaced += 1
        if self.replaced > 1:
            raise kubernetes.client.ApiException(status=500, reason="etcd timeout")
        self.stored = manifest
        return manifest


def test_every_edit_in_a_failed_batch_fails() -> None:
    core = SlowFailingStore()
    shared = SharedConfigMap(core, "ns", "shared")
    outcomes: dict[str, object] = {}

    def submit(key: str) -> None:
        try:
            outcomes[key] = shared.submit(lambda data: data.update({key: "x"}))
        except kubernetes.client.ApiException as error:
            outcomes[key] = error.status

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    assert core.reading.wait(10)
    # Two more edits queue while the first write is under way: one write will carry both.
    later = [threading.Thread(target=submit, args=(key,)) for key in ("second", "third")]
    for thread in later:
        thread.start()
    deadline = time.monotonic() + 10
    while len(shared._queued) < 2:
        assert time.monotonic() < deadline, "the later edits never queued"
        time.sleep(0.01)
    core.release.set()
    for thread in (first, *later):
        thread.join(10)
    assert outcomes == {"first": True, "second": 500, "third": 500}
    assert core.stored["data"] == {"first": "x"}


@pytest.mark.parametrize(
    ("job", "model"),
    [
        ("modelops/ml/iris", ("ml", "iris")),
        ("node", None),
        ("modelops/ml", None),
        ("modelops/ml/iris/x", None),
    ],
)
def test_scrape_jobs_name_their_model(job: str, model: tuple[str, str] | None) -> None:
    assert model_of_job(job) == model
