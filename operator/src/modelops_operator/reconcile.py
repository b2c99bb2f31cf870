"""Level-based reconciliation of one ModelDeployment: observe the world, act on the difference
from the spec, and write down what was seen. Every trigger (the resource, its Job, its
Deployment, the resync timer) ends up here, so the order of events does not matter."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import kopf
import kubernetes
import pydantic

from modelops_operator import api, builders, constants, registration, status
from modelops_operator.kube import Kube, is_transient, refusal_message
from modelops_operator.monitoring import prometheus
from modelops_operator.settings import Settings

logger = logging.getLogger(__name__)

# Triggers for one resource arrive on several threads; its reconciles must not interleave.
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
# Models already told that ServiceMonitors are asked for but not installed: told once, not on
# every resync.
_warned_no_crd: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Outcome:
    phase: api.Phase
    reason: str
    message: str


class WriteRefused(Exception):
    """The apiserver refused one of the model's writes for good (403, 422, ...); its status says
    so. Worth retrying only slowly: a person has to change the spec, RBAC or a quota first."""


def reconcile(kube: Kube, settings: Settings, namespace: str, name: str) -> None:
    with _locks[(namespace, name)]:
        body = kube.get_model(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        refusal: kubernetes.client.ApiException | None = None
        try:
            new_status = _reconcile(kube, settings, body)
        except kubernetes.client.ApiException as error:
            if is_transient(error):
                raise
            refusal = error
            message = f"the apiserver refused a write: {refusal_message(error)}"
            generation = body["metadata"].get("generation", 0)
            new_status = status.failed(_previous_status(body), "WriteRefused", message, generation)
        _report(kube, body, new_status)
        if refusal is not None:
            raise WriteRefused(new_status.message) from refusal


def _report(kube: Kube, body: dict[str, Any], new_status: api.ModelDeploymentStatus) -> None:
    """Write the status where it changed; an Event when the phase changed, or a failure's
    message did."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = body.get("status") or {}
    wire = new_status.to_wire()
    if wire != previous:
        # A merge patch: fields we no longer report are nulled out explicitly.
        kube.patch_model_status(
            namespace, name, wire | {key: None for key in previous if key not in wire}
        )
    if previous.get("phase") != new_status.phase:
        post = kopf.warn if new_status.phase == "Failed" else kopf.info
        post(_as_body(body), reason=new_status.phase, message=new_status.message)
    elif new_status.phase == "Failed" and previous.get("message") != new_status.message:
        kopf.warn(_as_body(body), reason=new_status.phase, message=new_status.message)


def _previous_status(body: dict[str, Any]) -> api.ModelDeploymentStatus:
    try:
        return api.ModelDeploymentStatus.model_validate(body.get("status") or {})
    except pydantic.ValidationError:
        # Status is rebuilt from the world; a mangled one is only a lost cache.
        logger.warning("ignoring an unreadable status on %s", body["metadata"]["name"])
        return api.ModelDeploymentStatus()


def _invalid(body: dict[str, Any], message: str) -> api.ModelDeploymentStatus:
    generation = body["metadata"].get("generation", 0)
    return status.failed(_previous_status(body), "InvalidSpec", message, generation)


def _as_body(body: dict[str, Any]) -> kopf.Body:
    # kopf's helpers take any mapping at run time; its types name only its own Body.
    return cast(kopf.Body, body)


def _adopted(manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    # Owner reference only: kopf.adopt would also copy the owner's labels, and Argo CD's
    # tracking label on a child makes Argo CD prune it as an unknown resource.
    kopf.append_owner_reference(manifest, owner=_as_body(owner))
    return manifest


def _reconcile(kube: Kube, settings: Settings, body: dict[str, Any]) -> api.ModelDeploymentStatus:
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    generation = metadata.get("generation", 0)
    if not api.NAME_RULE.check(name):
        return _invalid(body, api.NAME_RULE.message)
    try:
        spec = api.ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'spec'}: {problem['msg']}"
            for problem in error.errors()
        )
        return _invalid(body, f"invalid spec: {problems}")
    previous = _previous_status(body)

    claim = builders.build_claim(name, namespace, spec.storage)
    if claim is not None:
        observed_claim = kube.get(
            "v1", "PersistentVolumeClaim", namespace, claim["metadata"]["name"]
        )
        if observed_claim is None:
            kube.create_if_absent(_adopted(claim, body))

    training = _observe_training(kube, settings, body, spec, previous.training)
    history = previous.history
    verdict = None
    if training.state == "Succeeded" and training.result is not None:
        verdict = status.judge(training.result, spec.training.quality_gate)
        if verdict.promoted:
            history = status.promote(
                history, training.result.model_copy(update={"score": verdict.score})
            )

    chosen = status.serving_target(history, spec.serving.model_version)
    target = chosen.model
    rollout = None
    if target is not None:
        rollout = _ensure_serving(kube, settings, body, spec, target)

    _sync_monitoring(kube, settings, body, spec.monitoring)

    trained = _trained_condition(training, verdict)
    deployed = _deployed_condition(chosen, rollout)
    outcome = _outcome(spec, training, verdict, chosen, rollout)
    conditions = [
        status.condition(previous.conditions, constants.CONDITION_TRAINED, *trained, generation),
        status.condition(previous.conditions, constants.CONDITION_DEPLOYED, *deployed, generation),
        status.condition(
            previous.conditions,
            constants.CONDITION_READY,
            outcome.phase == "Ready",
            outcome.reason,
            outcome.message,
            generation,
        ),
    ]
    return api.ModelDeploymentStatus(
        phase=outcome.phase,
        message=outcome.message,
        observed_generation=generation,
        conditions=conditions,
        model=target,
        history=history,
        training=training,
        replicas=rollout.replicas if rollout else None,
        ready_replicas=rollout.ready_replicas if rollout else None,
        endpoint=builders.endpoint(name, namespace, settings) if target else None,
    )


def _observe_training(
    kube: Kube,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    previous: api.TrainingStatus | None,
) -> api.TrainingStatus:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    job_name = builders.training_job_name(name, spec.training)
    spec_hash = builders.training_hash(spec.training)
    job = kube.get("batch/v1", "Job", namespace, job_name)
    if job is None:
        job = kube.create_if_absent(
            _adopted(builders.build_training_job(name, namespace, spec, settings), body)
        )
        kopf.info(
            _as_body(body), reason="TrainingStarted", message=f"training Job {job_name} created"
        )
    finished_before = (
        previous is not None
        and previous.spec_hash == spec_hash
        and previous.job_name == job_name
        and previous.state != "Running"
    )
    if finished_before:
        assert previous is not None
        return previous
    pods = kube.list_pods(namespace, f"job-name={job_name}")
    return status.training_status(job, pods, spec_hash)


def _ensure_serving(
    kube: Kube,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    target: api.ModelRecord,
) -> status.Rollout:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    server = constants.SERVER_NAME.format(name=name)
    deployment = kube.apply(
        _adopted(builders.build_server_deployment(name, namespace, spec, target, settings), body),
        kube.get("apps/v1", "Deployment", namespace, server),
    )
    service = builders.build_service(name, namespace)
    kube.apply(
        _adopted(service, body),
        kube.get("v1", "Service", namespace, service["metadata"]["name"]),
    )
    observed_autoscaler = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, server)
    if spec.serving.autoscaling is not None:
        kube.apply(
            _adopted(builders.build_autoscaler(name, namespace, spec.serving.autoscaling), body),
            observed_autoscaler,
        )
    elif observed_autoscaler is not None:
        kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", namespace, server)
    progress = status.rollout(deployment, target.version)
    if progress.complete:
        return progress
    pods = kube.list_pods(namespace, builders.selector(name, "server"))
    return dataclasses.replace(progress, problem=status.pod_problem(pods))


def _sync_monitoring(
    kube: Kube, settings: Settings, body: dict[str, Any], monitoring: api.MonitoringSpec
) -> None:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    monitored_by_operator = _sync_service_monitor(kube, settings, body, monitoring)
    try:
        registration.sync(
            kube, settings, namespace, name, monitoring, scrape_job=not monitored_by_operator
        )
    except (ValueError, kubernetes.client.ApiException) as error:
        if isinstance(error, kubernetes.client.ApiException):
            if is_transient(error):
                raise
            error = ValueError(f"the apiserver refused a write: {refusal_message(error)}")
        # The shared configuration is the platform's, not this model's: say so, keep serving.
        kopf.warn(_as_body(body), reason="MonitoringNotConfigured", message=str(error))


def _sync_service_monitor(
    kube: Kube, settings: Settings, body: dict[str, Any], monitoring: api.MonitoringSpec
) -> bool:
    """Whether the model is scraped through its own ServiceMonitor (made or removed here)."""
    if not settings.service_monitors:
        return False
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    if not kube.serves(prometheus.SERVICE_MONITOR_API_VERSION, "ServiceMonitor"):
        if (namespace, name) not in _warned_no_crd:
            _warned_no_crd.add((namespace, name))
            kopf.warn(
                _as_body(body),
                reason="MonitoringNotConfigured",
                message="MODELOPS_SERVICE_MONITORS is on but the ServiceMonitor CRD "
                f"({prometheus.SERVICE_MONITOR_API_VERSION}) is not installed: "
                "scraping through the shared prometheus.yml instead",
            )
        return False
    observed = kube.get(prometheus.SERVICE_MONITOR_API_VERSION, "ServiceMonitor", namespace, name)
    if monitoring.prometheus.enabled:
        monitor = prometheus.build_service_monitor(namespace, name, monitoring.prometheus.interval)
        kube.apply(_adopted(monitor, body), observed)
    elif observed is not None:
        kube.delete(prometheus.SERVICE_MONITOR_API_VERSION, "ServiceMonitor", namespace, name)
    return True


def _trained_condition(
    training: api.TrainingStatus, verdict: status.Verdict | None
) -> tuple[bool, str, str]:
    if training.state == "Running" and training.message:
        return False, "TrainingStuck", f"training Job {training.job_name}: {training.message}"
    if training.state == "Running":
        return False, "Training", f"training Job {training.job_name} is running"
    if training.state == "Failed":
        return (
            False,
            "TrainingFailed",
            f"training Job {training.job_name} failed: {training.message}",
        )
    assert verdict is not None
    if verdict.promoted:
        return True, "Promoted", verdict.explanation
    return False, "BelowThreshold", verdict.explanation


def _deployed_condition(
    chosen: status.Target, rollout: status.Rollout | None
) -> tuple[bool, str, str]:
    target = chosen.model
    if target is None or rollout is None:
        return False, chosen.reason, chosen.message
    progress = f"{rollout.ready_replicas}/{rollout.replicas} replicas ready"
    if rollout.complete:
        return True, "RolledOut", f"serving {target.version}, {progress}"
    if rollout.problem:
        return False, "PodsStuck", f"rolling out {target.version}, {progress}: {rollout.problem}"
    return False, "RollingOut", f"rolling out {target.version}, {progress}"


def _outcome(
    spec: api.ModelDeploymentSpec,
    training: api.TrainingStatus,
    verdict: status.Verdict | None,
    chosen: status.Target,
    rollout: status.Rollout | None,
) -> Outcome:
    target = chosen.model
    serving_note = f"; {target.version} keeps serving" if target is not None else ""
    if chosen.reason == "VersionNotFound":
        return Outcome("Failed", chosen.reason, chosen.message)
    if training.state == "Failed":
        return Outcome(
            "Failed",
            "TrainingFailed",
            f"training Job {training.job_name} failed: {training.message}{serving_note}",
        )
    if verdict is not None and not verdict.promoted and spec.serving.model_version is None:
        return Outcome("Failed", "BelowThreshold", verdict.explanation + serving_note)
    if training.state == "Running" and spec.serving.model_version is None:
        if training.message:
            # A pod that cannot run would otherwise show "Training" until the Job's deadline.
            return Outcome(
                "Failed",
                "TrainingStuck",
                f"training Job {training.job_name} cannot run: {training.message}{serving_note}",
            )
        return Outcome(
            "Training", "Training", f"training Job {training.job_name} is running{serving_note}"
        )
    if target is None or rollout is None:
        return Outcome("Pending", chosen.reason, chosen.message)
    progress = f"{rollout.ready_replicas}/{rollout.replicas} replicas ready"
    if not rollout.complete and rollout.problem:
        return Outcome(
            "Failed",
            "PodsStuck",
            f"rolling out {target.version} is stuck, {progress}: {rollout.problem}",
        )
    if not rollout.complete:
        return Outcome("Deploying", "RollingOut", f"rolling out {target.version}, {progress}")
    score = f" ({target.score})" if target.score else ""
    return Outcome("Ready", "Ready", f"serving {target.version}{score}, {progress}")
