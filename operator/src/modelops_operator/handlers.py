"""kopf handlers: thin triggers that all lead to `reconcile` (and `forget` on delete)."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import kopf
import kubernetes

from modelops_operator import constants, registration
from modelops_operator.kube import Kube, is_transient
from modelops_operator.reconcile import RETRY_DELAY_SECONDS, ModelLocks, WriteRefused, reconcile
from modelops_operator.settings import Settings

MANAGED = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}
# The kinds of children watched (child_changed). Their watches carry MANAGED as a label
# selector, so the apiserver streams only what modelops made, not every Job, Deployment and pod
# of the cluster (kopf's `labels=` alone filters after receiving).
CHILD_RESOURCES = (("batch", "v1", "jobs"), ("apps", "v1", "deployments"), ("", "v1", "pods"))
REFUSED_RETRY_SECONDS = 60
# A deletion retries a transient failure this many times, then completes without the cleanup.
DELETE_RETRIES = 5


API_CONNECTIONS = 32


def _api_client() -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    # Handlers run on many threads at once; the default pool of 4 would churn connections.
    configuration.connection_pool_maxsize = API_CONNECTIONS
    return kubernetes.client.ApiClient(configuration)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    settings.posting.level = logging.INFO
    watch_only_managed_children(settings)
    settings.execution.max_workers = 16
    memo.kube = Kube(_api_client())
    memo.locks = ModelLocks()
    memo.sweeps = registration.SweepSchedule(memo.settings.sweep_seconds)


def watch_only_managed_children(settings: kopf.OperatorSettings) -> None:
    selector = ",".join(f"{key}={value}" for key, value in MANAGED.items())
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = selector


def _reconcile_or_retry(memo: Any, namespace: str | None, name: str) -> None:
    assert namespace, "ModelDeployments are namespaced"
    try:
        reconcile(memo.kube, memo.settings, memo.locks, namespace, name)
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


def register(settings: Settings) -> None:
    """Register the resync timer, whose interval is a setting; the other handlers register on
    import."""
    kopf.timer(
        constants.GROUP, constants.VERSION, constants.PLURAL, interval=settings.resync_seconds
    )(resync)


def resync(name: str, namespace: str | None, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    _reconcile_or_retry(memo, namespace, name)
    if memo.sweeps.due():
        _sweep(memo, logger)


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
    """Owned children go by garbage collection; only the shared entries need removing. The
    deletion never waits on them for long: what cannot be removed is reported, and the sweep
    takes it later."""
    assert namespace, "ModelDeployments are namespaced"
    try:
        registration.forget(memo.kube, memo.settings, namespace, name)
    except Exception as error:
        if is_transient(error) and retry < DELETE_RETRIES:
            raise kopf.TemporaryError(f"will retry: {error}", delay=RETRY_DELAY_SECONDS) from error
        message = (
            f"deleted, but its scrape job and dashboard could not be removed from the shared "
            f"ConfigMaps ({memo.settings.prometheus_config}, {memo.settings.grafana_dashboards}): "
            f"{error}"
        )
        logger.error(message)
        kopf.warn(body, reason="CleanupIncomplete", message=message)
        return
    _sweep(memo, logger)


def _sweep(memo: Any, logger: kopf.Logger) -> None:
    try:
        registration.sweep(memo.kube, memo.settings)
    except Exception as error:  # the next one may succeed; nothing depends on this one
        logger.warning(f"sweeping the shared ConfigMaps failed: {error}")


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
# Neither a Job's nor a Deployment's status changes while its pod cannot pull its image.
@kopf.on.event("", "v1", "pods", labels=MANAGED)
def child_changed(labels: Mapping[str, str], namespace: str | None, memo: Any, **_: Any) -> None:
    owner = labels.get(constants.LABEL_MODEL)
    if owner and namespace:
        # A refusal is in the model's status and Events already; its own handler retries it.
        with contextlib.suppress(WriteRefused):
            reconcile(memo.kube, memo.settings, memo.locks, namespace, owner)
