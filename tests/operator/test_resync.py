"""The resync loop (modelops_operator.resync): every model once per period, evenly spaced, and
nothing while a peer outranks this replica in kopf's peering object, as kopf's own handlers."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from conftest import Models, deploy_to_ready, sample  # type: ignore[import-not-found]
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import RESYNC_SECONDS, OperatorProcess
from modelops_envtest.waiting import wait_until
from modelops_operator import builders, resync
from modelops_operator.kube import Kube

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
OWN_PRIORITY = 100
# What `kopf freeze` writes: a peer nobody outranks.
FROZEN_PRIORITY = 2**62


def _peer(priority: int, seen_seconds_ago: float, lifetime: int = 60) -> dict[str, Any]:
    lastseen = NOW - datetime.timedelta(seconds=seen_seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen.isoformat()}


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ({}, False),
        ({"own": _peer(OWN_PRIORITY, 1)}, False),
        ({"newer": _peer(OWN_PRIORITY + 1, 1)}, True),
        ({"older": _peer(OWN_PRIORITY - 1, 1)}, False),
        ({"newer but gone": _peer(OWN_PRIORITY + 1, 61)}, False),
        ({"own": _peer(OWN_PRIORITY, 1), "newer": _peer(OWN_PRIORITY + 1, 30)}, True),
    ],
    ids=["no peers", "itself", "a live newer", "a live older", "a dead newer", "among others"],
)
def test_outranked_follows_kopfs_rule(peers: dict[str, Any], expected: bool) -> None:
    assert resync.outranked({"status": peers}, OWN_PRIORITY, NOW) is expected


def test_a_peering_object_without_status_outranks_nobody() -> None:
    assert not resync.outranked({"metadata": {"name": "modelops"}}, OWN_PRIORITY, NOW)
    assert not resync.outranked(None, OWN_PRIORITY, NOW)


def _run_loop(
    period: float,
    models: list[resync.Key],
    leading: list[bool],
    rounds: int,
) -> tuple[list[tuple[float, resync.Key]], list[float]]:
    """Runs the loop until `rounds` rounds ended; `leading` is read at every check."""
    reconciled: list[tuple[float, resync.Key]] = []
    ended: list[float] = []

    async def leads(namespaces: list[str]) -> bool:
        assert namespaces == sorted({namespace for namespace, _ in models})
        return leading[0]

    async def reconcile(key: resync.Key) -> None:
        reconciled.append((time.monotonic(), key))

    async def after_round() -> None:
        ended.append(time.monotonic())

    async def main() -> None:
        loop = asyncio.create_task(
            resync.resync_forever(period, lambda: list(models), leads, reconcile, after_round)
        )
        while len(ended) < rounds:
            await asyncio.sleep(0.01)
        loop.cancel()

    asyncio.run(main())
    return reconciled, ended


def test_every_model_once_a_period_evenly_spaced() -> None:
    models = [("a", "iris"), ("a", "wine"), ("b", "iris"), ("b", "diabetes")]
    started = time.monotonic()
    # A period long beside the event loop's delays on a busy machine (CI's kind cluster beside
    # it delayed one by over 50 ms).
    reconciled, ended = _run_loop(2.0, models, [True], rounds=2)

    assert [key for _, key in reconciled][:8] == models * 2
    offsets = [at - started for at, _ in reconciled[:4]]
    for position, offset in enumerate(offsets):
        assert offset == pytest.approx(position * 0.5, abs=0.2)
    assert ended[0] - started == pytest.approx(2.0, abs=0.2)


def test_an_outranked_replica_reconciles_nothing_until_it_leads_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resync, "PEERING_RECHECK_SECONDS", 0.01)
    leading = [False]
    reconciled: list[tuple[float, resync.Key]] = []

    async def main() -> None:
        async def leads(namespaces: list[str]) -> bool:
            return leading[0]

        async def reconcile(key: resync.Key) -> None:
            reconciled.append((time.monotonic(), key))

        async def after_round() -> None:
            pass

        loop = asyncio.create_task(
            resync.resync_forever(0.1, lambda: [("a", "iris")], leads, reconcile, after_round)
        )
        await asyncio.sleep(0.5)
        assert reconciled == [], "nothing while outranked"
        leading[0] = True
        await asyncio.sleep(0.25)
        loop.cancel()

    asyncio.run(main())
    assert reconciled, "resumed once it leads"


def test_a_failed_listing_of_the_models_costs_one_period_not_the_loop() -> None:
    """The models' listing may ask the apiserver (about a ghost) and fail: the loop goes on."""
    failures = [ConnectionResetError("apiserver gone")]
    reconciled: list[resync.Key] = []

    def keys() -> list[resync.Key]:
        if failures:
            raise failures.pop()
        return [("a", "iris")]

    async def main() -> None:
        async def leads(namespaces: list[str]) -> bool:
            return True

        async def reconcile(key: resync.Key) -> None:
            reconciled.append(key)

        async def after_round() -> None:
            pass

        loop = asyncio.create_task(resync.resync_forever(0.05, keys, leads, reconcile, after_round))
        await asyncio.sleep(0.3)
        assert not loop.done(), "the loop survived the failure"
        loop.cancel()

    asyncio.run(main())
    assert reconciled and set(reconciled) == {("a", "iris")}


@pytest.fixture
def peering_objects(
    control_plane: ControlPlane, namespace: str, crds_installed: None
) -> Iterator[str]:
    """A ClusterKopfPeering and a KopfPeering in `namespace`, both named for this test."""
    name = "resync-test"
    for kind, scope in (("ClusterKopfPeering", {}), ("KopfPeering", {"namespace": namespace})):
        manifest = {
            "apiVersion": resync.PEERING_API_VERSION,
            "kind": kind,
            "metadata": {"name": name, **scope},
        }
        control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    yield name
    control_plane.kubectl("delete", "clusterkopfpeering", name, "--ignore-not-found")


def _set_peers(
    control_plane: ControlPlane, kind: str, name: str, peers: dict[str, Any], *scope: str
) -> None:
    control_plane.kubectl(
        "patch", kind, name, *scope, "--type=merge", "-p", json.dumps({"status": peers})
    )


def _live_peer(priority: int) -> dict[str, Any]:
    lastseen = datetime.datetime.now(datetime.UTC).isoformat()
    return {"priority": priority, "lifetime": 60, "lastseen": lastseen}


@pytest.mark.controlplane
@pytest.mark.parametrize("clusterwide", [True, False], ids=["cluster-wide", "namespaced"])
def test_the_peering_object_is_read_as_kopf_reads_it(
    control_plane: ControlPlane,
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    peering_objects: str,
    clusterwide: bool,
) -> None:
    kind, scope = ("clusterkopfpeering", ()) if clusterwide else ("kopfpeering", ("-n", namespace))
    clock = [0.0]
    peering = resync.Peering(
        Kube(api_client),
        peering_objects,
        OWN_PRIORITY,
        clusterwide=clusterwide,
        clock=lambda: clock[0],
    )
    assert peering.leads([namespace])

    _set_peers(
        control_plane, kind, peering_objects, {"newer": _live_peer(OWN_PRIORITY + 1)}, *scope
    )
    assert peering.leads([namespace]), "read again only after PEERING_RECHECK_SECONDS"
    clock[0] += resync.PEERING_RECHECK_SECONDS
    assert not peering.leads([namespace])

    _set_peers(control_plane, kind, peering_objects, {"newer": None}, *scope)
    clock[0] += resync.PEERING_RECHECK_SECONDS
    assert peering.leads([namespace])


@pytest.mark.controlplane
def test_the_resync_repairs_drift_and_waits_while_a_peer_outranks_the_operator(
    models: Models, kubelet: Kubelet, trained: Any, control_plane: ControlPlane
) -> None:
    """A Service deleted by hand: no child's event tells of it, the resync brings it back. While
    a peer outranks the operator (as `kopf freeze` does), it stays gone."""
    deploy_to_ready(models, kubelet, trained, sample("iris"))

    def service_exists() -> bool:
        found = models.kubectl("get", "service", "iris", "--ignore-not-found", "-o", "name")
        return bool(found.stdout.strip())

    models.kubectl("delete", "service", "iris")
    wait_until(service_exists, what="the resync to recreate the Service")

    peering = ("clusterkopfpeering", "modelops")
    try:
        _set_peers(control_plane, *peering, {"frozen-by-test": _live_peer(FROZEN_PRIORITY)})
        time.sleep(resync.PEERING_RECHECK_SECONDS + 1)
        models.kubectl("delete", "service", "iris")
        time.sleep(2 * RESYNC_SECONDS + 1)
        assert not service_exists(), "an outranked operator leaves the world alone"
    finally:
        _set_peers(control_plane, *peering, {"frozen-by-test": None})
    wait_until(service_exists, what="the resync to recreate the Service once the operator leads")


@pytest.mark.controlplane
def test_the_operator_makes_the_peering_objects_it_meets_at(
    control_plane: ControlPlane, namespace: str, crds_installed: None
) -> None:
    """A namespaced operator makes its KopfPeering in each namespace it names (nothing else
    would: the install holds no custom resource), and starts leading there."""
    operator = OperatorProcess(control_plane, MODELOPS_NAMESPACES=f"{namespace},team-*").start()
    try:
        found = control_plane.kubectl(
            "-n", namespace, "get", "kopfpeering", "modelops", "-o", "json", check=False
        )
        assert found.returncode == 0, f"{found.stderr}\n{operator.log_tail()}"
        assert json.loads(found.stdout)["metadata"]["name"] == "modelops"
    finally:
        operator.stop()


def test_peerings_are_made_for_the_cluster_or_each_named_namespace() -> None:
    [cluster] = builders.build_peerings("modelops", [])
    assert (cluster["kind"], cluster["metadata"]) == ("ClusterKopfPeering", {"name": "modelops"})
    named = builders.build_peerings("modelops", ["team-a", "team-*", "ml"])
    assert [(p["kind"], p["metadata"]["namespace"]) for p in named] == [
        ("KopfPeering", "team-a"),
        ("KopfPeering", "ml"),
    ]
