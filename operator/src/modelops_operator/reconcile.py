"""Level-based reconciliation of one ModelDeployment: observe the world, act on the difference
from the spec, and write down what was seen. Every trigger (the resource, its Job, its
Deployment, the resync loop) ends up here, so the order of events does not matter."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any, cast

import kopf
import kubernetes
import pydantic

from modelops_operator import api, builders, constants, registration, schedule, status
from modelops_operator.children import WatchedChildren
from modelops_operator.kube import Kube, NameTaken, is_transient, refusal_message
from modelops_operator.monitoring import grafana, prometheus
from modelops_operator.settings import Settings
from modelops_operator.watched_models import WatchedModels

logger = logging.getLogger(__name__)

# How soon a transient failure (a conflict, an apiserver briefly away) is tried again.
RETRY_DELAY_SECONDS = 5
# How long a scheduled pod's containers may take to be made before its Events are read for why
# not: a volume attached and mounted, a sandbox made, an image pulled take seconds.
POD_START_PATIENCE_SECONDS = 10
# How long the scheduler may find no node for a pod before status says so: a rollout's new pod
# waits while an old one terminates to make room, and a cluster autoscaler adds a node in about
# a minute (the model is Failed meanwhile, and Ready again once the pod runs).
UNSCHEDULABLE_PATIENCE_SECONDS = 45
# How often a pod past its patience whose Events say nothing yet is looked at again.
STUCK_POD_RECHECK_SECONDS = 30
# How long a reconcile may keep failing for a reason that passes by itself (the apiserver or a
# webhook answering 5xx, throttling, children of an earlier model still going) before status
# says so: an apiserver's restart takes seconds, and should not fail every model.
LASTING_FAILURE_SECONDS = 30


def patience_left(since: datetime.datetime, patience: float) -> float:
    """Seconds until a pod that began waiting at `since` has waited `patience` seconds."""
    return patience - (datetime.datetime.now(datetime.UTC) - since).total_seconds()


def pod_patience_left(pod: dict[str, Any]) -> float | None:
    """Seconds until a pod that waits for a node, or for its containers, has waited too long;
    None for a pod that waits for neither."""
    lefts = [
        patience_left(since, UNSCHEDULABLE_PATIENCE_SECONDS)
        for _, since, _ in status.unschedulable_pods([pod])
    ] + [
        patience_left(scheduled, POD_START_PATIENCE_SECONDS)
        for _, scheduled in status.pods_being_made([pod])
    ]
    return min(lefts, default=None)


class WriteRefused(Exception):
    """The apiserver refused one of the model's writes for good (403, 422, ...), or an object
    not the model's holds a child's name; its status says so. Worth retrying only slowly: a
    person has to change the spec, RBAC, a quota or that object first."""


class EarlierChildrenGoing(kopf.TemporaryError):
    """A child's name is held by a child of an earlier model of this name (deleted and made
    again), which the garbage collector is removing."""


class LastingFailures:
    """Since when each model's reconciles have failed for a reason that passes by itself."""

    def __init__(self) -> None:
        self._since: dict[tuple[str, str], datetime.datetime] = {}

    def since(self, namespace: str, name: str) -> datetime.datetime:
        """When the failures began: now, for the first."""
        return self._since.setdefault((namespace, name), datetime.datetime.now(datetime.UTC))

    def ended(self, namespace: str, name: str) -> None:
        self._since.pop((namespace, name), None)


class ObjectInTheWay(Exception):
    """A child's name is taken by an object this model does not own, which is never taken
    over: deleting the model would delete it."""


@dataclasses.dataclass(frozen=True)
class World:
    """What a reconcile reads and writes: the apiserver, and the models and their children as
    the watches last saw them; `recheck(namespace, name, seconds)` reconciles the model again
    that much later, for news that no watch brings."""

    kube: Kube
    models: WatchedModels
    watched: WatchedChildren
    recheck: Callable[[str, str, float], None]
    failures: LastingFailures = dataclasses.field(default_factory=LastingFailures)

    def child(
        self, body: dict[str, Any], api_version: str, kind: str, name: str
    ) -> dict[str, Any] | None:
        """The model's child as the watches saw it, else as the apiserver has it: the watches
        have not seen one made a moment ago, nor ever an object that is not ours, which must
        not be written over."""
        seen = self._seen(body, api_version, kind, name)
        if seen is not None:
            return seen
        return self.kube.get(api_version, kind, body["metadata"]["namespace"], name)

    def own_child(
        self, body: dict[str, Any], api_version: str, kind: str, name: str
    ) -> dict[str, Any] | None:
        """The model's child, if one of its own may be there: for a watched kind the watches
        alone tell (all of the model's own carry the label they select on), else the
        apiserver."""
        if self.watched.watches(api_version, kind):
            return self._seen(body, api_version, kind, name)
        return self.kube.get(api_version, kind, body["metadata"]["namespace"], name)

    def _seen(
        self, body: dict[str, Any], api_version: str, kind: str, name: str
    ) -> dict[str, Any] | None:
        metadata = body["metadata"]
        return self.watched.get(api_version, kind, metadata["namespace"], metadata["name"], name)


@dataclasses.dataclass
class _Turn:
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # Claims that have not started reading the world yet.
    waiting: int = 0
    claims: int = 0


class ModelTurns:
    """One reconcile at a time per model: its triggers arrive on several threads. A child's
    event that finds another claim on the model still waiting leaves the work to it: that one
    reads the world after this event's change anyway. During a rollout a model's children
    send a dozen events within seconds; they cost one or two reconciles, not a dozen."""

    def __init__(self) -> None:
        self._turns: dict[tuple[str, str], _Turn] = {}
        self._guard = threading.Lock()

    def claim(self, namespace: str, name: str, *, coalesce: bool = False) -> Claim | None:
        """A place in the model's queue; None, when `coalesce`, if a waiting claim will do."""
        with self._guard:
            turn = self._turns.setdefault((namespace, name), _Turn())
            if coalesce and turn.waiting:
                return None
            turn.waiting += 1
            turn.claims += 1
        return Claim(self, namespace, name, turn)

    def queue(self, namespace: str, name: str) -> Claim:
        """A place in the model's queue, behind the claims before it."""
        claim = self.claim(namespace, name)
        assert claim is not None, "a claim without coalescing always gets its turn"
        return claim

    def __len__(self) -> int:
        """How many models have a claim."""
        with self._guard:
            return len(self._turns)

    def _started(self, turn: _Turn) -> None:
        with self._guard:
            turn.waiting -= 1

    def _ended(self, claim: Claim) -> None:
        with self._guard:
            claim.turn.claims -= 1
            if not claim.turn.claims:
                del self._turns[(claim.namespace, claim.name)]


@dataclasses.dataclass
class Claim:
    turns: ModelTurns
    namespace: str
    name: str
    turn: _Turn

    def run(self, work: Callable[[], None]) -> None:
        """Wait for the model's turn, then do `work` (blocking: run it on a worker thread)."""
        try:
            with self.turn.lock:
                self.turns._started(self.turn)
                work()
        finally:
            self.turns._ended(self)

    def reconcile(self, world: World, settings: Settings, *, workload_only: bool = False) -> None:
        """See _reconcile."""
        self.run(
            lambda: _reconcile_and_report(
                world, settings, self.namespace, self.name, workload_only=workload_only
            )
        )


def reconcile(
    world: World, settings: Settings, turns: ModelTurns, namespace: str, name: str
) -> None:
    turns.queue(namespace, name).reconcile(world, settings)


def _reconcile_and_report(
    world: World, settings: Settings, namespace: str, name: str, *, workload_only: bool
) -> None:
    body = world.models.get(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    refusal: Exception | None = None
    try:
        new_status = _reconcile(world, settings, body, workload_only=workload_only)
    except kubernetes.client.ApiException as error:
        if is_transient(error):
            _failing_for_now(world, body, f"the apiserver failed a write: {refusal_message(error)}")
            raise
        refusal = error
        new_status = _blocked(
            body, "WriteRefused", f"the apiserver refused a write: {refusal_message(error)}"
        )
    except EarlierChildrenGoing as error:
        _failing_for_now(world, body, str(error))
        raise
    except ObjectInTheWay as error:
        refusal = error
        new_status = _blocked(body, "ObjectInTheWay", str(error))
    world.failures.ended(namespace, name)
    _report(world.models, body, new_status)
    if refusal is not None:
        raise WriteRefused(new_status.message) from refusal


def _failing_for_now(world: World, body: dict[str, Any], what: str) -> None:
    """A reconcile failed for a reason that passes by itself: it is tried again soon, whatever
    started it, and once the failures have lasted LASTING_FAILURE_SECONDS status says so."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    world.recheck(namespace, name, RETRY_DELAY_SECONDS)
    since = world.failures.since(namespace, name)
    if (datetime.datetime.now(datetime.UTC) - since).total_seconds() < LASTING_FAILURE_SECONDS:
        return
    message = (
        f"{what} (failing since {since:%Y-%m-%dT%H:%M:%SZ}; "
        f"tried again every {RETRY_DELAY_SECONDS} s)"
    )
    try:
        _report(world.models, body, _blocked(body, "Retrying", message))
    except Exception as error:
        if not is_transient(error):
            raise
        # The status write fails too: the apiserver itself is away, and the caller's error
        # says so in the log.


def _report(
    models: WatchedModels, body: dict[str, Any], new_status: api.ModelDeploymentStatus
) -> None:
    """Write the status where it changed; an Event when the phase changed, or a failure's
    message did."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = body.get("status") or {}
    wire = new_status.to_wire()
    if wire != previous:
        models.patch_status(namespace, name, merge_patch(previous, wire))
    if previous.get("phase") != new_status.phase:
        _post(body, new_status.phase == "Failed", new_status.phase, new_status.message)
    elif new_status.phase == "Failed" and previous.get("message") != new_status.message:
        _post(body, True, new_status.phase, new_status.message)


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) that turns `old`, or anything that differs from it only
    where `new` has a say, into `new`: all of `new`, and the fields it no longer has nulled
    out, in nested objects too (a new model's record must not keep the old one's alias)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def _post(body: dict[str, Any], warning: bool, reason: str, message: str) -> None:
    """An Event on the model. Posted directly: kopf's own INFO chatter ("Handler ... succeeded",
    once per handler run and resync) is not posted (handlers.configure), ours always is."""
    kopf.event(
        _as_body(body), type="Warning" if warning else "Normal", reason=reason, message=message
    )


def _previous_status(body: dict[str, Any]) -> api.ModelDeploymentStatus:
    try:
        return api.ModelDeploymentStatus.model_validate(body.get("status") or {})
    except pydantic.ValidationError:
        # Status is rebuilt from the world; a mangled one is only a lost cache.
        logger.warning("ignoring an unreadable status on %s", body["metadata"]["name"])
        return api.ModelDeploymentStatus()


def _blocked(body: dict[str, Any], reason: str, message: str) -> api.ModelDeploymentStatus:
    generation = body["metadata"].get("generation", 0)
    return status.failed(_previous_status(body), reason, message, generation)


def _as_body(body: dict[str, Any]) -> kopf.Body:
    # kopf's helpers take any mapping at run time; its types name only its own Body.
    return cast(kopf.Body, body)


def _owned_by(child: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


def _apply_child(
    world: World,
    body: dict[str, Any],
    manifest: dict[str, Any],
    observed: dict[str, Any] | None,
) -> dict[str, Any]:
    """The model's child applied over what the watches show of it. One they do not show is only
    created: what is found under its name then (another's object made a moment ago, or the
    model's own that the watches have not caught up with) is judged as an observed one is."""
    adopted = _adopted(manifest, body)
    try:
        return world.kube.apply(adopted, _ours(observed, body))
    except NameTaken as taken:
        return world.kube.apply(adopted, _ours(taken.existing, body))


def _ours(observed: dict[str, Any] | None, owner: dict[str, Any]) -> dict[str, Any] | None:
    """The observed child (None when absent), unless someone else's object holds its name."""
    if observed is None or _owned_by(observed, owner):
        return observed
    metadata = observed["metadata"]
    if any(
        ref.get("kind") == constants.KIND and ref.get("name") == owner["metadata"]["name"]
        for ref in metadata.get("ownerReferences") or []
    ):
        # A model deleted and made again under its name: the old one's children are going.
        raise EarlierChildrenGoing(
            f"{observed['kind']} {metadata['name']} of an earlier {constants.KIND} of this "
            "name is still being garbage-collected",
            delay=RETRY_DELAY_SECONDS,
        )
    raise ObjectInTheWay(
        f"{observed['kind']} {metadata['namespace']}/{metadata['name']} already exists and is "
        f"not managed by ModelDeployment {owner['metadata']['name']}; modelops will not take it "
        "over. Rename or delete that object, or give the model another name"
    )


def _adopted(manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    # Owner reference only: kopf.adopt would also copy the owner's labels, and Argo CD's
    # tracking label on a child makes Argo CD prune it as an unknown resource.
    kopf.append_owner_reference(manifest, owner=_as_body(owner))
    return manifest


def _reconcile(
    world: World, settings: Settings, body: dict[str, Any], *, workload_only: bool
) -> api.ModelDeploymentStatus:
    """The model's reconcile. `workload_only` (a child's event: its Job, Deployment or pods
    changed) leaves out what such events cannot change, the claim and the monitoring, which
    the spec's changes and the resync take care of: half the requests of a full reconcile."""
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    generation = metadata.get("generation", 0)
    if not api.NAME_RULE.check(name):
        return _blocked(body, "InvalidSpec", api.NAME_RULE.message)
    try:
        spec = api.ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'spec'}: {problem['msg']}"
            for problem in error.errors()
        )
        return _blocked(body, "InvalidSpec", f"invalid spec: {problems}")
    if spec.model is not None and spec.model.in_mlflow and not builders.tracking(spec, settings):
        return _blocked(
            body,
            "InvalidSpec",
            f"spec.model.uri {spec.model.uri} is in an MLflow registry, but no MLflow server is "
            "named: set spec.mlflow.trackingUri (or the operator's MODELOPS_MLFLOW)",
        )
    refusal = builders.server_image_refusal(spec.serving, settings)
    if refusal is not None:
        return _blocked(body, "ImageNotAllowed", refusal)
    previous = _previous_status(body)
    try:
        run = _scheduled_run(spec, body, previous.training)
    except ValueError as error:
        return _blocked(body, "InvalidSpec", str(error))
    reported_monitoring = status.reported_monitoring(previous.conditions, generation)
    workload_only = workload_only and reported_monitoring is not None

    if not workload_only:
        # Before any pod of the model: a training or fetch container never runs unfenced.
        _apply_or_remove(
            world,
            body,
            builders.build_network_policy(name, namespace, settings)
            if settings.network_policies
            else None,
            (
                "networking.k8s.io/v1",
                "NetworkPolicy",
                constants.NETWORK_POLICY_NAME.format(name=name),
            ),
        )
    # A provided model is fetched by each serving pod: it needs no volume of its own.
    claim = (
        builders.build_claim(name, namespace, spec.storage, settings)
        if spec.training is not None
        else None
    )
    if claim is not None and not workload_only:
        # Applied, not only created: a larger storage.size resizes the claim, and what the
        # apiserver refuses (a class that cannot expand, a shrink) reaches status in its words.
        _apply_child(
            world,
            body,
            claim,
            world.child(body, "v1", "PersistentVolumeClaim", claim["metadata"]["name"]),
        )

    training, verdict, history = _versions(world, settings, body, spec, previous, run)
    chosen = status.serving_target(history, spec.serving.model_version)
    target = chosen.model
    rollout = None
    if target is not None:
        rollout = _ensure_serving(world, settings, body, spec, target)
        target = _follow_champion(world, settings, body, spec, target, rollout)
        target, history = status.with_serving_since(
            previous.model, target, history, rollout.complete
        )
    _apply_or_remove(
        world,
        body,
        builders.build_history_configmap(name, namespace, history, target)
        if target is not None
        else None,
        ("v1", "ConfigMap", constants.HISTORY_NAME.format(name=name)),
    )

    if workload_only and reported_monitoring is not None:
        monitoring = reported_monitoring
    else:
        monitoring = _sync_monitoring(world, settings, body, spec.monitoring)
        _tell_monitoring_news(body, previous, monitoring)

    outcome = status.outcome(spec, training, verdict, chosen, rollout, monitoring)
    return api.ModelDeploymentStatus(
        phase=outcome.phase,
        message=outcome.message,
        observed_generation=generation,
        conditions=status.conditions(
            previous.conditions,
            generation,
            status.trained_condition(training, verdict),
            status.deployed_condition(chosen, rollout),
            outcome,
            monitoring,
        ),
        model=target,
        history=history,
        training=training,
        next_training_at=run.next,
        replicas=rollout.replicas if rollout else None,
        ready_replicas=rollout.ready_replicas if rollout else None,
        endpoint=builders.endpoint(name, namespace, settings) if target else None,
        grpc_endpoint=builders.grpc_endpoint(name, namespace, settings) if target else None,
        page=builders.page_hint(name, namespace) if target else None,
    )


def _scheduled_run(
    spec: api.ModelDeploymentSpec, body: dict[str, Any], previous: api.TrainingStatus | None
) -> schedule.ScheduledRun:
    if spec.training is None or spec.training.schedule is None:
        return schedule.ScheduledRun()
    return schedule.scheduled_run(
        spec.training.schedule,
        body["metadata"]["creationTimestamp"],
        datetime.datetime.now(datetime.UTC),
        running_for=previous.scheduled_for if previous else None,
        running=previous is not None and previous.state == "Running",
    )


def _versions(
    world: World,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    previous: api.ModelDeploymentStatus,
    run: schedule.ScheduledRun,
) -> tuple[api.TrainingStatus | None, status.Verdict | None, list[api.ModelRecord]]:
    """The latest training run and its verdict (None for a spec.model), and the history of
    servable versions with what they brought."""
    if spec.training is None:
        assert spec.model is not None, "the spec has exactly one of training and model"
        history = status.promote(
            previous.history, status.provided_record(spec.model), spec.serving.model_version
        )
        if previous.training is not None:
            # Training gave way to a provided model: its Jobs go, but for those in history.
            _remove_stale_jobs(world, body, "", history)
        return None, None, history
    training = _observe_training(world, settings, body, spec, spec.training, previous, run)
    history = previous.history
    verdict = None
    if training.state == "Succeeded" and training.result is not None:
        verdict = status.judge(training.result, spec.training.quality_gate)
        newer = status.promoted_since(history, training.job_name)
        if verdict.promoted and newer is not None:
            # A run seen again (a retrain token used before, or removed): what it made was
            # promoted once, and is not again over what came since.
            verdict = dataclasses.replace(
                verdict,
                explanation=f"{training.result.version} was promoted from {training.job_name} "
                f"before, and {newer.version} since, which stays; a new retrain token trains "
                "again",
            )
        elif verdict.promoted:
            history = status.promote(
                history,
                training.result.model_copy(
                    update={"score": verdict.score, "job_name": training.job_name}
                ),
                spec.serving.model_version,
            )
    if training.state != "Running":
        # Every time, not only when the run's outcome is new: a Job that appeared since (the
        # soak test once found one, after operator kills) would stay until the next run.
        _remove_stale_jobs(world, body, training.job_name, history)
    return training, verdict, history


def _observe_training(
    world: World,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    training_spec: api.TrainingSpec,
    previous_status: api.ModelDeploymentStatus,
    run: schedule.ScheduledRun,
) -> api.TrainingStatus:
    previous = previous_status.training
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    retrain_token = run.retrain_token(
        (body["metadata"].get("annotations") or {}).get(constants.ANNOTATION_RETRAIN, "")
    )
    job_name = builders.training_job_name(name, training_spec, retrain_token)
    spec_hash = builders.training_hash(training_spec, retrain_token)
    if (
        previous is not None
        and previous.spec_hash == spec_hash
        and previous.job_name == job_name
        and previous.state != "Running"
    ):
        # This run's outcome is in status: its Job has nothing more to say (and may be gone).
        return previous
    # A Job is only ever created, so one the watches have not seen is created at once: the
    # apiserver's "already exists" answers the question a read would.
    job = _ours(world.watched.get("batch/v1", "Job", namespace, name, job_name), body)
    if job is None:
        job, created = world.kube.create_if_absent(
            _adopted(
                builders.build_training_job(
                    name,
                    namespace,
                    spec,
                    settings,
                    retrain_token,
                    history=previous_status.history,
                ),
                body,
            )
        )
        _ours(job, body)
        if created:
            reason = f"for the schedule's {run.slot}" if run.slot else "created"
            _post(body, False, "TrainingStarted", f"training Job {job_name} {reason}")
            _stop_superseded_runs(world, body, job_name)
            # Its pods come later, and with them an event of the Job's.
            return status.training_status(job, [], spec_hash, run.slot)
    pods = world.watched.list("v1", "Pod", namespace, name, {"job-name": job_name})
    if status.outcome_due(job, pods):
        # The outcome is read once and kept in status, from the apiserver: the watches keep
        # neither specs (the pod read must have run the Job's template) nor Succeeded pods, and
        # may not have delivered a failed pod's message yet.
        job = world.kube.get("batch/v1", "Job", namespace, job_name) or job
        pods = world.kube.list("v1", "Pod", namespace, f"job-name={job_name}")
    training = status.training_status(job, pods, spec_hash, run.slot)
    if training.state == "Running" and not training.message:
        problem = _waited_problem(world, namespace, name, status.controlled_by(job, pods))
        return training.model_copy(update={"message": problem}) if problem else training
    return training


def _ensure_serving(
    world: World,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    target: api.ModelRecord,
) -> status.Rollout:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    server = constants.SERVER_NAME.format(name=name)
    service = builders.build_service(name, namespace)
    observed_deployment = _ours(world.child(body, "apps/v1", "Deployment", server), body)
    # The Service before its pods: the endpoints controller then makes the Service's Endpoints
    # before any pod's event asks it again. The other way round, under load, its cache had
    # not seen the Endpoints it made yet and it tried again ("FailedToCreateEndpoint ...
    # already exists", a Warning Event).
    _apply_child(
        world, body, service, world.child(body, "v1", "Service", service["metadata"]["name"])
    )
    deployment = _apply_child(
        world,
        body,
        builders.build_server_deployment(name, namespace, spec, target, settings),
        observed_deployment,
    )
    _apply_or_remove(
        world,
        body,
        builders.build_autoscaler(name, namespace, spec.serving.autoscaling)
        if spec.serving.autoscaling is not None
        else None,
        ("autoscaling/v2", "HorizontalPodAutoscaler", server),
    )
    _apply_or_remove(
        world,
        body,
        builders.build_disruption_budget(name, namespace)
        if builders.has_several_replicas(spec.serving)
        else None,
        ("policy/v1", "PodDisruptionBudget", server),
    )
    progress = status.rollout(deployment, target.version)
    if progress.complete:
        return progress
    pods = world.watched.list("v1", "Pod", namespace, name, builders.labels(name, "server"))
    problem = status.pod_problem(pods) or _waited_problem(world, namespace, name, pods)
    return dataclasses.replace(progress, problem=problem)


def _follow_champion(
    world: World,
    settings: Settings,
    body: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    target: api.ModelRecord,
    rollout: status.Rollout,
) -> api.ModelRecord:
    """Once the serving version's rollout completes, a Job points the registry's alias at it.
    The Jobs of other versions go: a success kept from before would vouch for an alias moved
    away since (a pin, then its removal)."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    wanted = builders.build_champion_job(name, namespace, spec, settings, target)
    wanted_name = wanted["metadata"]["name"] if wanted is not None else None
    champion_jobs = builders.labels(name, "champion")
    for other in world.watched.list("batch/v1", "Job", namespace, name, champion_jobs):
        if other["metadata"]["name"] != wanted_name and _owned_by(other, body):
            world.kube.delete("batch/v1", "Job", namespace, other["metadata"]["name"])
    server = builders.tracking(spec, settings)
    if wanted is None or wanted_name is None or server is None:
        return target
    job = _ours(world.watched.get("batch/v1", "Job", namespace, name, wanted_name), body)
    if job is None:
        if not rollout.complete:
            return target
        created, _ = world.kube.create_if_absent(_adopted(wanted, body))
        job = _ours(created, body)
    if job is None:
        return target
    # Its pods tell why it failed; a success needs no read.
    pods = (
        world.kube.list("v1", "Pod", namespace, f"job-name={wanted_name}")
        if status.job_failed(job)
        else []
    )
    return status.with_champion(target, server.champion_alias, job, pods)


def _waited_problem(
    world: World, namespace: str, name: str, pods: list[dict[str, Any]]
) -> str | None:
    """Why a pod has waited too long: for a node, in the scheduler's words; for its containers
    a while after it was scheduled, its newest Warning Event (a volume that cannot attach or
    mount is told nowhere else). Neither the end of a pod's patience nor its Events come from
    a watch: until one tells, the model is looked at again then."""
    look_again: list[float] = []
    for pod, since, message in status.unschedulable_pods(pods):
        if (left := patience_left(since, UNSCHEDULABLE_PATIENCE_SECONDS)) > 0:
            look_again.append(left)
            continue
        return f"pod {pod['metadata']['name']} cannot be scheduled: {message}"
    for pod, scheduled in status.pods_being_made(pods):
        if (left := patience_left(scheduled, POD_START_PATIENCE_SECONDS)) > 0:
            look_again.append(left)
            continue
        problem = status.event_problem(pod, _pod_events(world, pod))
        if problem is not None:
            return problem
        look_again.append(STUCK_POD_RECHECK_SECONDS)
    if look_again:
        world.recheck(namespace, name, min(look_again))
    return None


def _pod_events(world: World, pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's Events; none where the operator may not list them (a role of a release before
    it read them): they only tell why a pod is stuck, and the model is not failed for that."""
    metadata = pod["metadata"]
    try:
        return world.kube.list(
            "v1",
            "Event",
            metadata["namespace"],
            "",
            field_selector=f"involvedObject.uid={metadata['uid']}",
        )
    except kubernetes.client.ApiException as error:
        if error.status != 403:
            raise
        logger.warning(
            "cannot list Events to tell why pod %s waits: %s", metadata["name"], error.reason
        )
        return []


def _stop_superseded_runs(world: World, body: dict[str, Any], current_job: str) -> None:
    """A new run supersedes the model's runs still going: left running, one that ended after
    it would prune versions by the history it started with, the new run's among them."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    jobs = world.watched.list("batch/v1", "Job", namespace, name, builders.labels(name, "training"))
    for job in jobs:
        job_name = job["metadata"]["name"]
        if job_name != current_job and _owned_by(job, body) and not status.job_finished(job):
            world.kube.delete("batch/v1", "Job", namespace, job_name)
            _post(
                body,
                False,
                "TrainingStopped",
                f"training Job {job_name} stopped: {current_job} supersedes it",
            )


def _remove_stale_jobs(
    world: World, body: dict[str, Any], current_job: str, history: list[api.ModelRecord]
) -> None:
    """Once a run ended: the model's Jobs outside the bounded history go, with their pods."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    jobs = world.watched.list("batch/v1", "Job", namespace, name, builders.labels(name, "training"))
    owned = (job["metadata"]["name"] for job in jobs if _owned_by(job, body))
    for job_name in status.stale_jobs(owned, current_job, history):
        world.kube.delete("batch/v1", "Job", namespace, job_name)


def _tell_monitoring_news(
    body: dict[str, Any], previous: api.ModelDeploymentStatus, monitoring: status.Monitoring
) -> None:
    """A Warning Event when monitoring is not as asked, once per new message, not per resync."""
    before = next((c for c in previous.conditions if c.type == constants.CONDITION_MONITORED), None)
    if monitoring.reason != "Configured" and (
        before is None or before.message != monitoring.message
    ):
        _post(body, True, "MonitoringNotConfigured", monitoring.message)


def _sync_monitoring(
    world: World, settings: Settings, body: dict[str, Any], monitoring: api.MonitoringSpec
) -> status.Monitoring:
    """The scrape job (or ServiceMonitor) and dashboard the spec asks for. Monitoring is the
    platform's, not this model's: a failure there is reported, and the model keeps serving."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    # Scraped through its own ServiceMonitor, or through the shared scrape config files.
    monitored_by_operator = settings.service_monitors and world.kube.serves(
        prometheus.SERVICE_MONITOR_API_VERSION, "ServiceMonitor"
    )
    limits, capped = prometheus.scrape_limits(
        monitoring.prometheus, settings.scrape_limits, settings.scrape_max_limits
    )
    problems: list[str] = []
    for sync in (
        lambda: (
            _apply_or_remove(
                world,
                body,
                prometheus.build_service_monitor(
                    namespace, name, monitoring.prometheus.interval, limits
                )
                if monitoring.prometheus.enabled
                else None,
                (prometheus.SERVICE_MONITOR_API_VERSION, "ServiceMonitor", name),
            )
            if monitored_by_operator
            else None
        ),
        lambda: registration.sync(
            world.kube,
            world.watched,
            settings,
            namespace,
            name,
            monitoring.prometheus,
            limits,
            scrape_job=not monitored_by_operator,
        ),
        lambda: _apply_or_remove(
            world,
            body,
            grafana.build_dashboard_configmap(namespace, name)
            if monitoring.grafana.enabled and settings.dashboards
            else None,
            ("v1", "ConfigMap", constants.DASHBOARD_NAME.format(name=name)),
        ),
    ):
        try:
            sync()
        except (ValueError, ObjectInTheWay) as error:
            problems.append(str(error))
        except kubernetes.client.ApiException as error:
            if is_transient(error):
                raise
            problems.append(f"the apiserver refused a write: {refusal_message(error)}")
    problems += _unwired_monitoring(settings, monitoring, monitored_by_operator)
    if problems:
        return status.Monitoring(False, "NotConfigured", "; ".join(problems))
    if settings.service_monitors and not monitored_by_operator:
        return status.Monitoring(
            True,
            "SharedScrapeJob",
            "MODELOPS_SERVICE_MONITORS is on but the ServiceMonitor CRD "
            f"({prometheus.SERVICE_MONITOR_API_VERSION}) is not installed: scraping through "
            "the scrape config files instead",
        )
    if capped and monitoring.prometheus.enabled:
        return status.Monitoring(
            True,
            "LimitsCapped",
            "monitoring is in place, with limits lowered to the operator's most "
            f"(MODELOPS_SCRAPE_MAX_LIMITS): {'; '.join(capped)}",
        )
    return status.Monitoring(True, "Configured", "monitoring is in place as the spec asks")


def _unwired_monitoring(
    settings: Settings, monitoring: api.MonitoringSpec, monitored_by_operator: bool
) -> list[str]:
    """What the spec asks for that this installation of the platform does not provide."""
    unwired = []
    if monitoring.prometheus.enabled and not monitored_by_operator and not settings.scrape_files:
        unwired.append(
            "the operator is installed without Prometheus wiring (no scrape config files, no "
            "ServiceMonitors): nothing scrapes this model; set "
            "spec.monitoring.prometheus.enabled to false if that is intended"
        )
    if monitoring.grafana.enabled and not settings.dashboards:
        unwired.append(
            "the operator is installed without dashboards (MODELOPS_DASHBOARDS=false): set "
            "spec.monitoring.grafana.enabled to false if that is intended"
        )
    return unwired


def _apply_or_remove(
    world: World,
    body: dict[str, Any],
    manifest: dict[str, Any] | None,
    child: tuple[str, str, str],
) -> None:
    """An optional child (apiVersion, kind, name): applied when the spec asks for it
    (`manifest`), deleted when it no longer does, if it is the model's."""
    api_version, kind, child_name = child
    namespace = body["metadata"]["namespace"]
    if manifest is not None:
        _apply_child(world, body, manifest, world.child(body, api_version, kind, child_name))
        return
    observed = world.own_child(body, api_version, kind, child_name)
    if observed is not None and _owned_by(observed, body):
        world.kube.delete(api_version, kind, namespace, child_name)
