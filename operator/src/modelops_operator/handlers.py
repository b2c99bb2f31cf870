"""kopf handlers: thin triggers that all lead to `reconcile` (and `forget` on delete)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import random
import socket
import time
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes

from modelops_operator import (
    builders,
    children,
    constants,
    registration,
    resync,
    status,
    watched_models,
)
from modelops_operator.ghosts import Ghosts, Watch
from modelops_operator.kube import PLURALS, Kube, is_transient
from modelops_operator.rechecks import Rechecks
from modelops_operator.reconcile import (
    RETRY_DELAY_SECONDS,
    Claim,
    ModelTurns,
    World,
    WriteRefused,
    pod_patience_left,
    reconcile,
)

logger = logging.getLogger(__name__)

MANAGED = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}
MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED.items())


def _resource(api_version: str, kind: str) -> tuple[str, str, str]:
    """kopf's (group, version, plural)."""
    group, _, version = api_version.rpartition("/")
    return group, version, PLURALS[(api_version, kind)]


# The kinds of children watched (their index, child_changed for some). Their watches carry
# MANAGED as a label selector, so the apiserver streams only what modelops made, not every Job,
# Deployment and pod of the cluster (kopf's `labels=` alone filters after receiving).
CHILD_RESOURCES = tuple(_resource(*kind) for kind in children.WATCHED)
# A finished training pod has nothing more to say while the operator watches (its Job's
# outcome is read from the apiserver, once), and stays as long as its Job: half the pods.
# The watch sends a pod that succeeds as deleted.
FIELD_SELECTORS = {("v1", "Pod"): "status.phase!=Succeeded"}
# Every watch, as a listing selects the same (ghosts.py).
WATCHES = (
    Watch(constants.API_VERSION, constants.KIND),
    *(
        Watch(api_version, kind, MANAGED_SELECTOR, FIELD_SELECTORS.get((api_version, kind), ""))
        for api_version, kind in children.WATCHED
    ),
)
REFUSED_RETRY_SECONDS = 60
# A deletion retries a transient failure this many times, then completes without the cleanup.
DELETE_RETRIES = 5


API_CONNECTIONS = 32
# Threads that reconcile: kopf's, for the handlers of the model itself, and as many again for
# the children's events.
RECONCILE_THREADS = 16
DEPLOYMENT_EVENTS_GATHER_SECONDS = 0.5
WORKER_IDLE_SECONDS = 1.0


def _api_client() -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    # Handlers run on many threads at once; the default pool of 4 would churn connections.
    configuration.connection_pool_maxsize = API_CONNECTIONS
    # TCP keepalive as client-go's (30 s idle): a connection whose peer vanished (the apiserver
    # moved, a NAT forgot it) is found dead in minutes, not hours.
    configuration.keep_alive = True
    return kubernetes.client.ApiClient(configuration)


def _index_id(api_version: str, kind: str) -> str:
    return f"watched_{PLURALS[(api_version, kind)]}"


def _index_children(api_version: str, kind: str) -> None:
    # A coroutine: kopf runs a plain function on a worker thread, for every event.
    async def index(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[children.Key, children.Stored]:
        assert namespace is not None, "every watched kind is namespaced"
        return {children.key(namespace, labels): children.stored(api_version, kind, body)}

    kopf.index(*_resource(api_version, kind), labels=MANAGED, id=_index_id(api_version, kind))(
        index
    )


for _watched in children.WATCHED:
    _index_children(*_watched)

MODELS_INDEX = "watched_models"


@kopf.index(constants.GROUP, constants.VERSION, constants.PLURAL, id=MODELS_INDEX)
async def index_model(
    namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
) -> dict[watched_models.Key, watched_models.Stored]:
    assert namespace, "ModelDeployments are namespaced"
    memo.world.models.seen(namespace, name, body["metadata"]["resourceVersion"])
    # Started from here, not at startup: a task inherits its starter's context, and only a
    # watch's has the Event queue that kopf.event posts to.
    memo.resyncing.start(functools.partial(_resync_forever, memo))
    return {(namespace, name): watched_models.stored(body)}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    # kopf's own bookkeeping lives under our API group, not kopf's.
    settings.persistence.finalizer = f"{constants.GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.GROUP, key="last-handled-configuration"
    )
    # Peering: of two replicas only the higher priority acts. The newest start wins, so a
    # rollout hands over at once; the random part breaks a tie within one millisecond.
    settings.peering.priority = int(time.time() * 1000) * 1000 + random.randrange(1000)
    # memo.settings: what main() read, handed over through kopf.run's memo.
    # Two replicas with peering absent would both act: refuse to start instead.
    settings.peering.mandatory = not memo.settings.standalone
    # Only warnings and errors of kopf's log become Events: its INFO lines ("Handler ...
    # succeeded") would be an Event per model per resync. reconcile posts its own news.
    settings.posting.level = logging.WARNING
    # Events name their poster: this operator (kopf's default is "kopf"), and which replica (a
    # pod's hostname is its name).
    settings.posting.reporting_component = constants.COMPONENT
    settings.posting.reporting_instance = socket.gethostname()
    # After its own patch of a model, kopf waits for the watch to echo it before handling the
    # model again. Under load (a thousand models applied at once) the echo took longer than
    # kopf's 5 s, and kopf handled the creation of 85% of the models a second time.
    settings.persistence.consistency_timeout = watched_models.ECHO_TIMEOUT_SECONDS
    watch_only_managed_children(settings)
    # kopf runs a task per object that has events, which keeps the last one, parsed, until it
    # has been idle this long (kopf's default: 5 s). After a burst at a thousand models,
    # 1,300 of them were waiting at once.
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.execution.max_workers = RECONCILE_THREADS
    memo.executor = concurrent.futures.ThreadPoolExecutor(RECONCILE_THREADS, "child-events")
    # The indexes are kopf's, filled from the watches as they go; kopf holds back every
    # handler until each kind's first listing is in.
    kube = Kube(_api_client())
    memo.ghosts = Ghosts()
    memo.rechecks = Rechecks(asyncio.get_running_loop(), functools.partial(_recheck, memo))
    memo.world = World(
        kube,
        watched_models.WatchedModels(indexes[MODELS_INDEX], kube, ghosts=memo.ghosts),
        children.WatchedChildren(
            {kind: indexes[_index_id(*kind)] for kind in children.WATCHED}, ghosts=memo.ghosts
        ),
        memo.rechecks.after,
    )
    memo.turns = ModelTurns()
    # The reconciles that children's events started (child_changed), until each is done.
    memo.child_reconciles = set()
    # Per model: set when the burst its waiting claim gathers has ended.
    memo.gathering = {}
    memo.sweeps = registration.SweepSchedule(memo.settings.sweep_seconds)
    memo.peering = (
        None
        if settings.peering.standalone
        else resync.Peering(
            kube,
            settings.peering.name,
            settings.peering.priority,
            clusterwide=settings.peering.clusterwide,
        )
    )
    memo.resyncing = resync.Once()
    if not settings.peering.standalone:
        # Made here, not installed beside the CRD: an install's one `kubectl apply` cannot
        # create a custom resource whose CRD it creates too.
        for peering in builders.build_peerings(
            settings.peering.name, memo.settings.watched_namespaces
        ):
            await asyncio.to_thread(kube.create_if_absent, peering)


@kopf.on.cleanup()
async def stop_reconciling(memo: kopf.Memo, **_: Any) -> None:
    memo.resyncing.cancel()
    memo.rechecks.cancel()
    for reconciling in memo.child_reconciles:
        reconciling.cancel()
    memo.executor.shutdown(wait=False, cancel_futures=True)


def watch_only_managed_children(settings: kopf.OperatorSettings) -> None:
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = MANAGED_SELECTOR
    for kind, selector in FIELD_SELECTORS.items():
        settings.watching.field_selectors[_resource(*kind)] = selector


def _reconcile_or_retry(memo: Any, namespace: str | None, name: str) -> None:
    assert namespace, "ModelDeployments are namespaced"
    try:
        reconcile(memo.world, memo.settings, memo.turns, namespace, name)
    except WriteRefused as error:
        # Already in status and an Event: retry slowly, a person has to act first.
        raise kopf.TemporaryError(str(error), delay=REFUSED_RETRY_SECONDS) from error
    except Exception as error:
        if is_transient(error):
            raise kopf.TemporaryError(f"will retry: {error}", delay=RETRY_DELAY_SECONDS) from error
        raise


@kopf.on.resume(constants.GROUP, constants.VERSION, constants.PLURAL)
@kopf.on.create(constants.GROUP, constants.VERSION, constants.PLURAL)
@kopf.on.update(constants.GROUP, constants.VERSION, constants.PLURAL, field="spec")
# A field path as parts: the annotation's key has dots of its own.
@kopf.on.update(
    constants.GROUP,
    constants.VERSION,
    constants.PLURAL,
    field=["metadata", "annotations", constants.ANNOTATION_RETRAIN],
)
def model_changed(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    _reconcile_or_retry(memo, namespace, name)


async def _resync_forever(memo: Any) -> None:
    paused = False

    async def leads(namespaces: list[str]) -> bool:
        nonlocal paused
        if memo.peering is None:  # standalone
            return True
        leading = await asyncio.to_thread(memo.peering.leads, namespaces)
        if leading and paused:
            leading = await asyncio.to_thread(_find_ghosts, memo, "leading again after a pause")
        paused = not leading
        return leading

    async def reconcile_model(key: resync.Key) -> None:
        await _reconcile_in_pool(memo.turns.queue(*key), memo, why="at its resync")

    await resync.resync_forever(
        memo.settings.resync_seconds,
        memo.world.models.keys,
        leads,
        reconcile_model,
        functools.partial(asyncio.to_thread, _after_round, memo),
    )


@kopf.on.delete(constants.GROUP, constants.VERSION, constants.PLURAL)
def model_deleted(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    retry: int,
    memo: Any,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Owned children (the dashboard among them) go by garbage collection; only the scrape job,
    in a file shared with other models, needs removing. The deletion never waits on it for long:
    what cannot be removed is reported, and the sweep takes it later."""
    assert namespace, "ModelDeployments are namespaced"
    memo.world.failures.ended(namespace, name)
    try:
        # In the model's turn: a reconcile still going would write the scrape job back after
        # it was removed. The ones after it see the deletion and do nothing.
        memo.turns.queue(namespace, name).run(
            functools.partial(registration.forget, memo.world.kube, memo.settings, namespace, name)
        )
    except Exception as error:
        if is_transient(error) and retry < DELETE_RETRIES:
            raise kopf.TemporaryError(f"will retry: {error}", delay=RETRY_DELAY_SECONDS) from error
        configmap = "/".join(
            registration.scrape_config_map(registration.known_key(memo.settings), namespace, name)
        )
        message = (
            f"deleted, but its scrape job could not be removed from the ConfigMap {configmap}: "
            f"{error}"
        )
        logger.error(message)
        kopf.warn(body, reason="CleanupIncomplete", message=message)


def _find_ghosts(memo: Any, when: str) -> bool:
    """What the watches show that is gone (ghosts.py); the models whose children are among
    the new ghosts are reconciled at once. False if that cannot be told yet."""
    world = memo.world
    shown = world.models.shown() | world.watched.shown()
    try:
        new = memo.ghosts.find(
            world.kube, WATCHES, shown, clusterwide=not memo.settings.watched_namespaces
        )
    except Exception as error:
        logger.warning(f"{when}: listing what the watches show failed: {error}")
        return False
    if new:
        logger.info(f"{when}: of what the watches show, {len(new)} more are gone")
    for namespace, name in world.watched.owners(new):
        world.recheck(namespace, name, 0)
    return True


def _after_round(memo: Any) -> None:
    """Blocking. A watch that lists again on its own never drops what was deleted meanwhile
    (ghosts.py): looked for at the end of each round, so within a period of the deletion."""
    _find_ghosts(memo, "after a resync round")
    _sweep(memo)


def _sweep(memo: Any) -> None:
    if not memo.sweeps.due():
        return
    try:
        registration.sweep(memo.world.kube, memo.settings, memo.world.models.keys())
    except Exception as error:  # the next one may succeed; nothing depends on this one
        logger.warning(f"sweeping the scrape config files failed: {error}")


def _pod_news(body: kopf.Body, **_: Any) -> bool:
    # A stuck pod tells what its Job or Deployment does not, and a trainer whose container
    # exited 0 tells its success two seconds before its Job; every other pod event is followed
    # by one of theirs, or is news to nobody.
    trainer_done = "job-name" in body.metadata.labels and status.trainer_succeeded(body)
    return trainer_done or status.pod_problem([dict(body)]) is not None


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
# Neither a Job's nor a Deployment's status changes while its pod cannot pull its image.
@kopf.on.event("", "v1", "pods", labels=MANAGED, when=_pod_news)
async def child_changed(
    labels: Mapping[str, str],
    namespace: str | None,
    resource: kopf.Resource,
    body: kopf.Body,
    memo: Any,
    **_: Any,
) -> None:
    owner = labels.get(constants.LABEL_MODEL)
    if not (owner and namespace):
        return
    # A rollout's status updates come in bursts, the last of which finds it complete; a Job's
    # and a pod's news come one at a time.
    rolling = resource.plural == "deployments" and not status.rolled_out(body)
    claim = memo.turns.claim(namespace, owner, coalesce=True)
    if claim is None:
        # It joins a claim that waits for the rest of a burst: this is the end of it.
        if not rolling and (gathering := memo.gathering.get((namespace, owner))):
            gathering.set()
        return
    # Apart from this handler: kopf's worker for the child waits for its handlers, and meanwhile
    # keeps the child's next events queued, parsed. Those join this claim as they come.
    gather = DEPLOYMENT_EVENTS_GATHER_SECONDS if rolling else 0.0
    reconciling = asyncio.create_task(_reconcile_after_burst(claim, memo, gather))
    memo.child_reconciles.add(reconciling)
    reconciling.add_done_callback(memo.child_reconciles.discard)


def _waiting(body: kopf.Body, **_: Any) -> bool:
    return pod_patience_left(dict(body)) is not None


@kopf.on.event("", "v1", "pods", labels=MANAGED, when=_waiting)
async def pod_waiting(
    labels: Mapping[str, str], namespace: str | None, body: kopf.Body, memo: Any, **_: Any
) -> None:
    # Nothing a watch brings says that a pod has waited too long for a node or for its
    # containers: its model is looked at again then (reconcile._waited_problem).
    owner = labels.get(constants.LABEL_MODEL)
    left = pod_patience_left(dict(body))
    if not (owner and namespace) or left is None:
        return
    memo.rechecks.after(namespace, owner, max(0.0, left))


async def _reconcile_after_burst(claim: Claim, memo: Any, gather_seconds: float) -> None:
    # The rest of the burst arrives meanwhile and joins the claim, until the event that ends
    # the burst (a rollout complete) or `gather_seconds`.
    if gather_seconds:
        key = (claim.namespace, claim.name)
        ended = memo.gathering.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(ended.wait(), gather_seconds)
        except TimeoutError:
            pass
        finally:
            memo.gathering.pop(key, None)
    await _reconcile_in_pool(claim, memo, why="after its child changed", workload_only=True)


async def _recheck(memo: Any, namespace: str, name: str) -> None:
    claim = memo.turns.claim(namespace, name, coalesce=True)
    if claim is not None:  # else a claim still waits, and reads the world after this anyway
        await _reconcile_in_pool(claim, memo, why="looked at again", workload_only=True)


async def _reconcile_in_pool(
    claim: Claim, memo: Any, *, why: str, workload_only: bool = False
) -> None:
    """A reconcile outside kopf's handlers: what fails is logged, and the next resync tries
    again (the model's status tells what a person needs to know)."""
    try:
        # In kopf's context (the task's copy of the handler's), as its own sync handlers run:
        # kopf.event needs it.
        await asyncio.get_running_loop().run_in_executor(
            memo.executor,
            contextvars.copy_context().run,
            functools.partial(
                claim.reconcile, memo.world, memo.settings, workload_only=workload_only
            ),
        )
    except WriteRefused:
        pass  # in the model's status and Events already; its own handler retries it
    except Exception as error:
        where = f"{claim.namespace}/{claim.name} {why}"
        if is_transient(error) or isinstance(error, kopf.TemporaryError):
            logger.warning(f"reconciling {where}: {error}; the next resync tries again")
        else:
            logger.exception(f"reconciling {where}")
