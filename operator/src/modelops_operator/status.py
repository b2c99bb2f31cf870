"""Pure status logic: what the observed Job, pods and Deployment mean for a ModelDeployment."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

from modelops_operator import api, constants, schedule

# The training summary's own keys (docs/artifact-contract.md) that a ModelRecord keeps.
_SUMMARY_KEYS = (
    "version",
    "sha256",
    "compiledSha256",
    "metadataSha256",
    "artifactPath",
    "metrics",
    "trainedAt",
    "mlflow",
    "search",
)


def now() -> str:
    return schedule.timestamp(datetime.datetime.now(datetime.UTC))


def _job_condition(job: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _termination_message(pod: dict[str, Any]) -> str:
    for container in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"]).strip()
    return ""


def _newest(pods: list[dict[str, Any]], phase: str) -> dict[str, Any] | None:
    matching = [pod for pod in pods if pod.get("status", {}).get("phase") == phase]
    return max(matching, key=lambda pod: pod["metadata"].get("creationTimestamp", ""), default=None)


# What a container waits with while the kubelet makes it: normal for a while, until its pod's
# volumes or sandbox cannot be made.
_STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})
# Waiting reasons the kubelet keeps reporting until someone changes something (the image, the
# configuration, the code): worth telling the user at once rather than waiting out a deadline.
_STUCK_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)


_TERMINAL_PHASES = ("Succeeded", "Failed")


def pod_problem(pods: list[dict[str, Any]]) -> str | None:
    """Why a pod cannot run (a container stuck waiting, or evicted with no pod to replace it
    yet), in the kubelet's own words, the newest pod first; None when none is stuck. That the
    scheduler finds no node is a problem only once it has lasted (unschedulable_pods)."""
    live = _newest_first(pod for pod in pods if not pod["metadata"].get("deletionTimestamp"))
    active = [pod for pod in live if pod.get("status", {}).get("phase") not in _TERMINAL_PHASES]
    for pod in active:
        name = pod["metadata"]["name"]
        pod_status = pod.get("status") or {}
        containers = (pod_status.get("initContainerStatuses") or []) + (
            pod_status.get("containerStatuses") or []
        )
        for container in containers:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _STUCK_WAITING_REASONS:
                return f"pod {name}: {waiting['reason']}{_waiting_detail(container, waiting)}"
    evicted = [pod for pod in live if pod.get("status", {}).get("reason") == "Evicted"]
    if evicted and not active:
        pod = evicted[0]
        return f"pod {pod['metadata']['name']} was evicted: {pod['status'].get('message', '')}"
    return None


def unschedulable_pods(
    pods: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], datetime.datetime, str]]:
    """Pods the scheduler finds no node for, newest first, each with since when and the
    scheduler's words. That passes by itself while a rollout's old pod makes room or a cluster
    autoscaler adds a node; past a while, the pod is stuck."""
    found = []
    for pod in _newest_first(pods):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for condition in (pod.get("status") or {}).get("conditions") or []:
            since = _parse_time(condition.get("lastTransitionTime"))
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
                and since is not None
            ):
                found.append((pod, since, condition.get("message", "")))
    return found


def pods_being_made(pods: list[dict[str, Any]]) -> list[tuple[dict[str, Any], datetime.datetime]]:
    """Scheduled pods whose containers are still being made, newest first, each with when it
    was scheduled. Past a while such a pod is stuck, and the kubelet and the attach/detach
    controller say why (a volume that cannot attach or mount, a sandbox that cannot be made)
    only in its Events."""
    made = []
    for pod in _newest_first(pods):
        pod_status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or pod_status.get("phase") != "Pending":
            continue
        scheduled = next(
            (
                condition
                for condition in pod_status.get("conditions") or []
                if condition.get("type") == "PodScheduled" and condition.get("status") == "True"
            ),
            None,
        )
        containers = (pod_status.get("initContainerStatuses") or []) + (
            pod_status.get("containerStatuses") or []
        )
        states = [container.get("state") or {} for container in containers]
        being_made = all(
            "terminated" in state or (state.get("waiting") or {}).get("reason") in _STARTING_REASONS
            for state in states
        )
        since = _parse_time((scheduled or {}).get("lastTransitionTime"))
        if being_made and since is not None:
            made.append((pod, since))
    return made


# The kubelet's and the attach/detach controller's Warning Events that say why a pod's containers
# are not being made. Others are about containers already made (a readiness probe failing while
# the server starts, a crash loop's back-off): the pod's status says those, and may be newer
# than a watch's copy of it.
_NOT_MADE_REASONS = frozenset(
    {
        "FailedAttachVolume",
        "FailedMount",
        "FailedMapVolume",
        "FailedCreatePodSandBox",
        "FailedCreatePodContainer",
        "NetworkNotReady",
    }
)


# The node authorizer's refusal of a pod's claim or Secret to a node it has not yet linked the
# pod to: it passes by itself (the kubelet mounts again), and a model is not failed for it.
_NODE_NOT_YET_AUTHORIZED = "no relationship found between node"


def event_problem(pod: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """The newest Warning Event of `pod` that says why its containers are not being made, as
    the pod's problem; None when it has none."""
    warnings = [
        event
        for event in events
        if event.get("type") == "Warning"
        and event.get("reason") in _NOT_MADE_REASONS
        and _NODE_NOT_YET_AUTHORIZED not in event.get("message", "")
    ]
    if not warnings:
        return None
    newest = max(
        warnings,
        key=lambda event: (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or event["metadata"].get("creationTimestamp")
            or ""
        ),
    )
    name = pod["metadata"]["name"]
    return f"pod {name}: {newest.get('reason', 'Warning')}: {newest.get('message', '').strip()}"


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _waiting_detail(container: dict[str, Any], waiting: dict[str, Any]) -> str:
    # A crash loop's own words are the last run's termination message (the model fetch's
    # error, say); the kubelet's ("back-off restarting failed container") say only that.
    last_run = ((container.get("lastState") or {}).get("terminated") or {}).get("message", "")
    detail = last_run.strip() or waiting.get("message", "")
    return f": {detail}" if detail else ""


def _newest_first(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda pod: pod["metadata"].get("creationTimestamp", ""), reverse=True)


def parse_summary(message: str) -> api.ModelRecord:
    """The trainer's JSON summary, as left in its termination message."""
    try:
        summary = json.loads(message)
        return api.ModelRecord.model_validate({key: summary.get(key) for key in _SUMMARY_KEYS})
    except (ValueError, AttributeError, pydantic.ValidationError) as error:
        raise ValueError(
            f"the trainer's summary is unreadable ({error}): {message[:200]!r}"
        ) from None


def _job_succeeded(job: Mapping[str, Any]) -> dict[str, Any] | None:
    return _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet")


def _job_failed(job: Mapping[str, Any]) -> dict[str, Any] | None:
    return _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")


def with_champion(
    target: api.ModelRecord, alias: str, job: Mapping[str, Any], pods: list[dict[str, Any]]
) -> api.ModelRecord:
    """The serving version's record with what its champion Job did: the alias once it
    succeeded, or why it failed, in the pod's words."""
    assert target.mlflow is not None, "only a version registered in MLflow has a champion Job"
    if _job_succeeded(job):
        mlflow = target.mlflow.model_copy(update={"alias": alias})
    elif failed := _job_failed(job):
        pod = _newest(pods, "Failed")
        said = _termination_message(pod) if pod else ""
        problem = said or failed.get("message") or failed.get("reason") or "unknown"
        mlflow = target.mlflow.model_copy(update={"alias_problem": problem})
    else:
        return target
    return target.model_copy(update={"mlflow": mlflow})


def with_serving_since(
    previous: api.ModelRecord | None,
    target: api.ModelRecord,
    history: list[api.ModelRecord],
    rollout_complete: bool,
) -> tuple[api.ModelRecord, list[api.ModelRecord]]:
    """The serving version's record, and history, with when it began serving: kept while the
    same version goes on serving (a rollout of new resources included), now once a rollout of
    another version completes. History keeps each version's last start; the target carries it
    only while it serves."""
    if previous is not None and previous.version == target.version and previous.served_since:
        since: str | None = previous.served_since
    else:
        since = now() if rollout_complete else None
    target = target.model_copy(update={"served_since": since})
    if since is None:
        return target, history
    return target, [
        entry.model_copy(update={"served_since": since})
        if entry.version == target.version
        else entry
        for entry in history
    ]


def job_failed(job: Mapping[str, Any]) -> bool:
    return _job_failed(job) is not None


def job_finished(job: Mapping[str, Any]) -> bool:
    return bool(_job_succeeded(job) or _job_failed(job))


def training_status(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    spec_hash: str,
    scheduled_for: str | None = None,
) -> api.TrainingStatus:
    run = _training_status(job, pods, spec_hash)
    return run.model_copy(update={"scheduled_for": scheduled_for}) if scheduled_for else run


def controlled_by(job: Mapping[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods the Job controls (made or adopted): whose problems its run has. What they
    report as a result counts only if they ran its template (pods_of_job)."""
    uid = job["metadata"].get("uid")
    return [
        pod
        for pod in pods
        if any(
            owner.get("controller") and owner.get("uid") == uid
            for owner in pod["metadata"].get("ownerReferences") or []
        )
    ]


def pods_of_job(job: Mapping[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods that ran the Job's own template: what a run's outcome is read from. Anyone
    who may create a pod in the namespace can copy the Job's labels onto one, and the Job
    controller then adopts it (its selector is those labels): a pod counts only if the Job
    controls it and it runs the template's containers (images, commands, arguments,
    environment, mounts) with its volumes. Both specs are needed (the watches keep neither)."""
    template = (job.get("spec") or {}).get("template", {}).get("spec") or {}
    return [
        pod
        for pod in controlled_by(job, pods)
        if template.get("containers") and _runs_template(pod.get("spec") or {}, template)
    ]


def outcome_due(job: Mapping[str, Any], pods: list[dict[str, Any]]) -> bool:
    """The run is over, by the Job's word or by the exit codes of a pod it controls: two
    seconds before the Job controller writes it down."""
    return job_finished(job) or any(trainer_succeeded(pod) for pod in controlled_by(job, pods))


_CONTAINER_ESSENTIALS = ("name", "image", "command", "args", "env", "envFrom", "volumeMounts")


def _runs_template(pod_spec: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    def essentials(spec: Mapping[str, Any]) -> list[list[Any]]:
        return [
            [container.get(field) for field in _CONTAINER_ESSENTIALS]
            for container in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        ]

    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes") or []}
    return essentials(pod_spec) == essentials(template) and all(
        volumes.get(volume["name"]) == volume for volume in template.get("volumes") or []
    )


def trainer_succeeded(pod: Mapping[str, Any]) -> bool:
    """The pod Succeeded, or every container of it exited 0: the kubelet writes the phase
    a second after the exit codes."""
    pod_status = pod.get("status") or {}
    exits = [
        ((container.get("state") or {}).get("terminated") or {}).get("exitCode")
        for container in pod_status.get("containerStatuses") or []
    ]
    return pod_status.get("phase") == "Succeeded" or (bool(exits) and set(exits) == {0})


def _training_status(
    job: dict[str, Any], pods: list[dict[str, Any]], spec_hash: str
) -> api.TrainingStatus:
    name = job["metadata"]["name"]
    ran = pods_of_job(job, pods)
    succeeded = max(
        (pod for pod in ran if trainer_succeeded(pod)),
        key=lambda pod: pod["metadata"].get("creationTimestamp", ""),
        default=None,
    )
    # The Job runs one pod to one completion: that pod's success, its summary written, is the
    # Job's, known two seconds before the Job controller writes it down.
    if _job_succeeded(job) or (succeeded and _termination_message(succeeded)):
        if succeeded is None:
            return api.TrainingStatus(
                spec_hash=spec_hash,
                job_name=name,
                state="Failed",
                message=f"Job {name} completed, but no pod that ran its template succeeded: a "
                "pod with its labels that something else made is never read",
            )
        message = _termination_message(succeeded)
        try:
            result = parse_summary(message)
        except ValueError as error:
            return api.TrainingStatus(
                spec_hash=spec_hash, job_name=name, state="Failed", message=str(error)
            )
        return api.TrainingStatus(
            spec_hash=spec_hash, job_name=name, state="Succeeded", result=result
        )
    failed = _job_failed(job)
    if failed:
        pod = _newest(ran, "Failed")
        trainer_said = _termination_message(pod) if pod else ""
        reason = trainer_said or failed.get("message") or failed.get("reason") or "unknown"
        return api.TrainingStatus(
            spec_hash=spec_hash, job_name=name, state="Failed", message=reason
        )
    return api.TrainingStatus(
        spec_hash=spec_hash,
        job_name=name,
        state="Running",
        message=pod_problem(controlled_by(job, pods)) or "",
    )


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    score: str | None
    explanation: str


def judge(model: api.ModelRecord, gate: api.QualityGate | None) -> Verdict:
    if gate is None:
        return Verdict(True, None, f"{model.version} promoted (no quality gate)")
    value = model.metrics.get(gate.metric)
    if value is None:
        return Verdict(False, None, f"{model.version} has no {gate.metric} metric to judge it by")
    score = f"{gate.metric}={value:.4g}"
    lower_is_better = gate.metric in api.LOWER_IS_BETTER
    passed = value <= gate.threshold if lower_is_better else value >= gate.threshold
    relation = ("<=" if passed else ">") if lower_is_better else (">=" if passed else "<")
    verdict = "promoted" if passed else "not promoted"
    return Verdict(passed, score, f"{model.version} {verdict}: {score} {relation} {gate.threshold}")


def provided_record(source: api.ModelSource) -> api.ModelRecord:
    """The version that spec.model names. A model is its bytes: its version comes from its
    digest, so the same file at another address is the same version."""
    return api.ModelRecord(
        version=f"v{source.sha256[:12]}",
        sha256=source.sha256,
        artifact_path=source.uri,
        origin="Provided",
    )


def promote(
    history: list[api.ModelRecord], model: api.ModelRecord, pinned: str | None = None
) -> list[api.ModelRecord]:
    """Newest first, each version once, at most HISTORY_LIMIT entries, the `pinned` one
    (serving.modelVersion) among them however old: what leaves history, the next training run
    deletes from storage, and a pinned version still serves. A version promoted again (each
    reconcile promotes the run's result) keeps when it served."""
    before = next((entry for entry in history if entry.version == model.version), None)
    if before is not None and before.served_since and not model.served_since:
        model = model.model_copy(update={"served_since": before.served_since})
    rest = [entry for entry in history if entry.version != model.version]
    kept = [model, *rest][: api.HISTORY_LIMIT]
    old_pin = [entry for entry in rest[api.HISTORY_LIMIT - 1 :] if entry.version == pinned]
    return kept[: api.HISTORY_LIMIT - len(old_pin)] + old_pin


def promoted_since(history: list[api.ModelRecord], job_name: str) -> api.ModelRecord | None:
    """The newest version, when the one that `job_name` made is in history behind it."""
    made = [entry for entry in history if entry.job_name == job_name]
    if made and history[0] is not made[0]:
        return history[0]
    return None


def stale_jobs(job_names: Iterable[str], current: str, history: list[api.ModelRecord]) -> list[str]:
    """The training Jobs to remove: all but the current run and those that made a version
    still in history (their logs are the versions' provenance)."""
    keep = {current} | {entry.job_name for entry in history if entry.job_name}
    return sorted(set(job_names) - keep)


@dataclass(frozen=True)
class Target:
    """The model to serve, or None with the reason (a CamelCase word and a sentence)."""

    model: api.ModelRecord | None
    reason: str = ""
    message: str = ""


def serving_target(history: list[api.ModelRecord], pinned: str | None) -> Target:
    if pinned is None:
        if history:
            return Target(history[0])
        return Target(None, "NoModel", "no model has been promoted yet")
    for entry in history:
        if entry.version == pinned:
            return Target(entry)
    known = ", ".join(entry.version for entry in history) or "none yet"
    return Target(
        None,
        "VersionNotFound",
        f"serving.modelVersion {pinned} is not a promoted version of this model "
        f"(known: {known}); pin one of them or remove the pin",
    )


@dataclass(frozen=True)
class Rollout:
    complete: bool
    replicas: int
    ready_replicas: int
    # Why a pod of an incomplete rollout cannot run (pod_problem), when one cannot.
    problem: str | None = None


def rollout(deployment: Mapping[str, Any], version: str) -> Rollout:
    wanted = int(deployment.get("spec", {}).get("replicas", 1))
    ready = int(deployment.get("status", {}).get("readyReplicas") or 0)
    serves_version = (
        deployment["metadata"].get("labels", {}).get(constants.LABEL_VERSION) == version
    )
    complete = serves_version and rolled_out(deployment)
    return Rollout(complete=complete, replicas=wanted, ready_replicas=ready)


def rolled_out(deployment: Mapping[str, Any]) -> bool:
    """Every pod the Deployment wants runs its current template and is available."""
    wanted = int(deployment.get("spec", {}).get("replicas", 1))
    status = deployment.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted
        and int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
    )


def condition(
    previous: list[api.Condition],
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
) -> api.Condition:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    status: Literal["True", "False"] = "True" if ok else "False"
    before = next((c for c in previous if c.type == kind), None)
    since = before.last_transition_time if before and before.status == status else now()
    return api.Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def failed(
    previous: api.ModelDeploymentStatus, reason: str, message: str, generation: int
) -> api.ModelDeploymentStatus:
    """`previous` marked Failed for `generation`, its lifecycle conditions False with `reason`:
    for a failure that stops the reconcile itself. What was serving is still reported as
    serving, and the other conditions as they were."""
    lifecycle = (
        constants.CONDITION_TRAINED,
        constants.CONDITION_DEPLOYED,
        constants.CONDITION_READY,
    )
    conditions = [
        condition(previous.conditions, kind, False, reason, message, generation)
        for kind in lifecycle
    ] + [kept for kept in previous.conditions if kept.type not in lifecycle]
    return previous.model_copy(
        update={
            "phase": "Failed",
            "message": message,
            "observed_generation": generation,
            "conditions": conditions,
        }
    )


@dataclass(frozen=True)
class Monitoring:
    """How the model's monitoring stands: the Monitored condition."""

    configured: bool
    reason: str
    message: str


def reported_monitoring(conditions: list[api.Condition], generation: int) -> Monitoring | None:
    """The Monitored condition as status has it for this generation of the spec; None when it
    has none (then monitoring must be looked at)."""
    for condition in conditions:
        if condition.type == constants.CONDITION_MONITORED and (
            condition.observed_generation == generation
        ):
            return Monitoring(condition.status == "True", condition.reason, condition.message)
    return None


@dataclass(frozen=True)
class Outcome:
    """The phase, with the Ready condition's reason and the message that goes with it."""

    phase: api.Phase
    reason: str
    message: str


def trained_condition(
    training: api.TrainingStatus | None, verdict: Verdict | None
) -> tuple[bool, str, str]:
    if training is None:
        return True, "ModelProvided", "spec.model provides the model: there is nothing to train"
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


def deployed_condition(chosen: Target, rollout: Rollout | None) -> tuple[bool, str, str]:
    target = chosen.model
    if target is None or rollout is None:
        return False, chosen.reason, chosen.message
    progress = f"{rollout.ready_replicas}/{rollout.replicas} replicas ready"
    if rollout.complete:
        return True, "RolledOut", f"serving {target.version}, {progress}"
    if rollout.problem:
        return False, "PodsStuck", f"rolling out {target.version}, {progress}: {rollout.problem}"
    return False, "RollingOut", f"rolling out {target.version}, {progress}"


def outcome(
    spec: api.ModelDeploymentSpec,
    training: api.TrainingStatus | None,
    verdict: Verdict | None,
    chosen: Target,
    rollout: Rollout | None,
    monitoring: Monitoring,
) -> Outcome:
    """Where the model stands, in one phase and message; monitoring that could not be set up
    is told in the message but never changes the phase (serving goes on without it)."""
    lifecycle = _lifecycle_outcome(spec, training, verdict, chosen, rollout)
    if monitoring.configured:
        return lifecycle
    return dataclasses.replace(
        lifecycle, message=f"{lifecycle.message}; monitoring not configured: {monitoring.message}"
    )


def conditions(
    previous: list[api.Condition],
    generation: int,
    trained: tuple[bool, str, str],
    deployed: tuple[bool, str, str],
    overall: Outcome,
    monitoring: Monitoring,
) -> list[api.Condition]:
    """The four conditions, each keeping its lastTransitionTime while its status holds."""
    return [
        condition(previous, constants.CONDITION_TRAINED, *trained, generation),
        condition(previous, constants.CONDITION_DEPLOYED, *deployed, generation),
        condition(
            previous,
            constants.CONDITION_READY,
            overall.phase == "Ready",
            overall.reason,
            overall.message,
            generation,
        ),
        condition(
            previous,
            constants.CONDITION_MONITORED,
            monitoring.configured,
            monitoring.reason,
            monitoring.message,
            generation,
        ),
    ]


def _lifecycle_outcome(
    spec: api.ModelDeploymentSpec,
    training: api.TrainingStatus | None,
    verdict: Verdict | None,
    chosen: Target,
    rollout: Rollout | None,
) -> Outcome:
    target = chosen.model
    serving_note = f"; {target.version} keeps serving" if target is not None else ""
    if chosen.reason == "VersionNotFound":
        return Outcome("Failed", chosen.reason, chosen.message)
    if training is not None and training.state == "Failed":
        return Outcome(
            "Failed",
            "TrainingFailed",
            f"training Job {training.job_name} failed: {training.message}{serving_note}",
        )
    if verdict is not None and not verdict.promoted and spec.serving.model_version is None:
        return Outcome("Failed", "BelowThreshold", verdict.explanation + serving_note)
    if training is not None and training.state == "Running" and spec.serving.model_version is None:
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
