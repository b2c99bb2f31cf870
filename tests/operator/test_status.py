"""Pure status logic: reading the Job and its pods, the quality gate, history and rollouts."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from modelops_operator import api, status

SUMMARY = {
    "name": "iris",
    "namespace": "ns",
    "version": "v0123456789ab",
    "sha256": "a" * 64,
    "metrics": {"accuracy": 0.95, "f1_macro": 0.94},
    "artifactPath": "/models/ns/iris/v0123456789ab",
    "trainedAt": "2026-11-23T08:00:00Z",
}
JOB_UID = "3f1c0e52-job"
TRAINER_POD: dict[str, Any] = {
    "containers": [
        {
            "name": "trainer",
            "image": "modelops/trainer:0.1.0",
            "args": ["--output-root", "/models", "--name", "iris"],
            "volumeMounts": [{"mountPath": "/models", "name": "models"}],
        }
    ],
    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "iris-models"}}],
}


def job(condition: str | None) -> dict[str, Any]:
    conditions = (
        [
            {
                "type": condition,
                "status": "True",
                "message": "Job has reached the specified backoff limit",
            }
        ]
        if condition
        else []
    )
    return {
        "metadata": {"name": "iris-train-abc", "uid": JOB_UID},
        "spec": {"template": {"spec": TRAINER_POD}},
        "status": {"conditions": conditions},
    }


def pod(
    phase: str, message: str, created: str = "2026-11-23T08:00:00Z", owner: str = "JOB"
) -> dict[str, Any]:
    """A pod of the Job's (`owner` its uid), or of whatever uid is named."""
    uid = JOB_UID if owner == "JOB" else owner
    return {
        "metadata": {
            "name": f"iris-train-abc-{created[-3:-1]}",
            "creationTimestamp": created,
            "ownerReferences": [
                {"kind": "Job", "name": "iris-train-abc", "uid": uid, "controller": True}
            ],
        },
        # What the Job's pods get: the template, and what admission adds (the API token).
        "spec": TRAINER_POD | {"volumes": [*TRAINER_POD["volumes"], {"name": "kube-api-access"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"state": {"terminated": {"message": message}}}],
        },
    }


def record(version: str, **metrics: float) -> api.ModelRecord:
    return api.ModelRecord(
        version=version, sha256="0" * 64, artifact_path=f"/m/{version}", metrics=metrics
    )


def test_running_job() -> None:
    assert status.training_status(job(None), [], "h").state == "Running"


def test_completed_job_yields_the_trainers_summary() -> None:
    training = status.training_status(job("Complete"), [pod("Succeeded", json.dumps(SUMMARY))], "h")
    assert training.state == "Succeeded" and training.result is not None
    assert training.result.version == SUMMARY["version"]
    assert training.result.metrics == SUMMARY["metrics"]


def test_the_trainers_success_ends_the_run_before_the_job_controller_says_so() -> None:
    training = status.training_status(job(None), [pod("Succeeded", json.dumps(SUMMARY))], "h")
    assert training.state == "Succeeded" and training.result is not None
    assert training.result.version == SUMMARY["version"]
    # Its summary not yet in the pod's status: the Job's own word is awaited.
    assert status.training_status(job(None), [pod("Succeeded", "")], "h").state == "Running"
    # The container exited 0, and the kubelet has not written the pod's phase yet.
    exited = pod("Running", json.dumps(SUMMARY))
    exited["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 0
    assert status.training_status(job(None), [exited], "h").state == "Succeeded"
    exited["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 1
    assert status.training_status(job(None), [exited], "h").state == "Running"


def test_a_pod_that_did_not_run_the_jobs_template_says_nothing_of_its_run() -> None:
    """Anyone who may create a pod in the namespace can label one `job-name=<the Job>` and leave
    a summary of their choosing (a version, a digest, metrics past the gate) in it."""
    forged = {**SUMMARY, "version": "v000000forged", "metrics": {"accuracy": 1.0}}
    planted = pod("Succeeded", json.dumps(forged), "2026-11-23T09:00:00Z", owner="someone-else")
    unowned = planted | {"metadata": planted["metadata"] | {"ownerReferences": []}}
    # With the Job's labels and no owner, the Job controller adopts it: its own code, though.
    attackers_image = {**TRAINER_POD["containers"][0], "image": "attacker/any:1"}
    other_claim = {"name": "models", "persistentVolumeClaim": {"claimName": "theirs"}}
    adopted = [
        pod("Succeeded", json.dumps(forged), "2026-11-23T09:00:00Z")
        | {"spec": TRAINER_POD | change}
        for change in ({"containers": [attackers_image]}, {"volumes": [other_claim]})
    ]
    for fake in (planted, unowned, *adopted):
        assert status.training_status(job(None), [fake], "h").state == "Running"
        real = pod("Succeeded", json.dumps(SUMMARY))
        training = status.training_status(job("Complete"), [real, fake], "h")
        assert training.result is not None and training.result.version == SUMMARY["version"]


def test_unreadable_summary_is_a_failure_that_says_so() -> None:
    training = status.training_status(job("Complete"), [pod("Succeeded", "not json")], "h")
    assert training.state == "Failed" and "unreadable" in training.message


def test_the_compiled_forms_digest_is_kept_when_the_trainer_wrote_one() -> None:
    with_compiled = json.dumps(SUMMARY | {"compiledSha256": "c" * 64})
    training = status.training_status(job("Complete"), [pod("Succeeded", with_compiled)], "h")
    assert training.result is not None and training.result.compiled_sha256 == "c" * 64

    without = status.training_status(job("Complete"), [pod("Succeeded", json.dumps(SUMMARY))], "h")
    assert without.result is not None and without.result.compiled_sha256 is None

    bad = json.dumps(SUMMARY | {"compiledSha256": "not-a-digest"})
    training = status.training_status(job("Complete"), [pod("Succeeded", bad)], "h")
    assert training.state == "Failed" and "compiledSha256" in training.message


def test_a_summary_without_a_proper_digest_is_never_served() -> None:
    for digest in (None, "", "not-a-digest", "A" * 64):
        summary = json.dumps(SUMMARY | {"sha256": digest})
        training = status.training_status(job("Complete"), [pod("Succeeded", summary)], "h")
        assert training.state == "Failed" and "sha256" in training.message, digest


def test_stale_jobs_are_those_outside_history_and_not_current() -> None:
    history = [
        record("v2").model_copy(update={"job_name": "iris-train-b"}),
        record("v1"),  # promoted before Jobs were recorded: nothing to keep for it
    ]
    jobs = ["iris-train-a", "iris-train-b", "iris-train-c", "iris-train-d"]
    assert status.stale_jobs(jobs, "iris-train-d", history) == ["iris-train-a", "iris-train-c"]
    assert status.stale_jobs(["iris-train-d"], "iris-train-d", []) == []


def test_failed_job_reports_the_newest_pods_words() -> None:
    pods = [
        pod("Failed", "error: first try", "2026-11-23T08:00:00Z"),
        pod("Failed", "error: dataset 'mnist' is unknown", "2026-11-23T08:01:00Z"),
    ]
    training = status.training_status(job("Failed"), pods, "h")
    assert training.state == "Failed" and training.message == "error: dataset 'mnist' is unknown"


def test_failed_job_without_a_message_falls_back_to_the_jobs_condition() -> None:
    training = status.training_status(job("Failed"), [], "h")
    assert training.message == "Job has reached the specified backoff limit"


def test_gate_higher_is_better() -> None:
    gate = api.QualityGate(metric="accuracy", threshold=0.9)
    assert status.judge(record("v1", accuracy=0.95), gate).promoted
    verdict = status.judge(record("v1", accuracy=0.85), gate)
    assert not verdict.promoted and verdict.explanation == "v1 not promoted: accuracy=0.85 < 0.9"


@pytest.mark.parametrize("metric", ["rmse", "mae", "mape"])
def test_gate_lower_is_better_for_errors(metric: api.RegressionMetric) -> None:
    gate = api.QualityGate(metric=metric, threshold=0.5)
    assert status.judge(record("v1", **{metric: 0.4}), gate).promoted
    verdict = status.judge(record("v1", **{metric: 0.6}), gate)
    assert not verdict.promoted and verdict.explanation == f"v1 not promoted: {metric}=0.6 > 0.5"


def test_gate_on_a_missing_metric_refuses() -> None:
    verdict = status.judge(
        record("v1", accuracy=0.9), api.QualityGate(metric="roc_auc", threshold=0.5)
    )
    assert not verdict.promoted and "no roc_auc metric" in verdict.explanation


def test_no_gate_promotes() -> None:
    assert status.judge(record("v1"), None).promoted


def test_a_pinned_version_stays_in_history_however_old() -> None:
    """What leaves history, the next run's prune deletes from storage: a pinned version serves."""
    history: list[api.ModelRecord] = []
    for index in range(api.HISTORY_LIMIT + 5):
        history = status.promote(history, record(f"v{index}"), pinned="v0")
        versions = [entry.version for entry in history]
        assert "v0" in versions and len(versions) == min(index + 1, api.HISTORY_LIMIT)
    assert versions[0] == f"v{api.HISTORY_LIMIT + 4}" and versions[-1] == "v0"
    # Unpinned, it goes as any other.
    history = status.promote(history, record("vnew"))
    assert "v0" not in [entry.version for entry in history]


def test_history_is_newest_first_unique_and_bounded() -> None:
    history: list[api.ModelRecord] = []
    for index in range(api.HISTORY_LIMIT + 3):
        history = status.promote(history, record(f"v{index}"))
    history = status.promote(history, record("v5"))
    versions = [entry.version for entry in history]
    assert (
        versions[0] == "v5"
        and len(versions) == api.HISTORY_LIMIT
        and len(set(versions)) == len(versions)
    )


def test_serving_target_pins_and_explains() -> None:
    history = [record("v2"), record("v1")]
    assert status.serving_target(history, None).model == history[0]
    assert status.serving_target(history, "v1").model == history[1]
    missing = status.serving_target(history, "v9")
    assert (
        missing.model is None
        and missing.reason == "VersionNotFound"
        and "known: v2, v1" in missing.message
    )
    assert status.serving_target([], None).reason == "NoModel"


def deployment(version: str, **state: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2, "labels": {"modelops.dev/version": version}},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, **state},
    }


def test_rollout_complete_only_when_the_new_version_is_available() -> None:
    done = dict(replicas=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2)
    assert status.rollout(deployment("v2", **done), "v2").complete
    assert not status.rollout(deployment("v1", **done), "v2").complete
    surging = dict(replicas=3, updatedReplicas=2, availableReplicas=2, readyReplicas=3)
    assert not status.rollout(deployment("v2", **surging), "v2").complete


def test_condition_keeps_its_transition_time_while_unchanged() -> None:
    first = status.condition([], "Ready", True, "Ready", "ok", 1)
    again = status.condition(
        [first.model_copy(update={"last_transition_time": "2000-01-01T00:00:00Z"})],
        "Ready",
        True,
        "Ready",
        "ok",
        2,
    )
    assert again.last_transition_time == "2000-01-01T00:00:00Z" and again.observed_generation == 2
    flipped = status.condition([again], "Ready", False, "Training", "", 3)
    assert flipped.last_transition_time != "2000-01-01T00:00:00Z"


def test_monitoring_not_configured_is_told_but_never_stops_serving() -> None:
    spec = api.ModelDeploymentSpec.model_validate(
        {"training": {"dataset": {"builtin": "iris"}, "estimator": "RandomForestClassifier"}}
    )
    model = record("v1", accuracy=0.9)
    training = api.TrainingStatus(spec_hash="h", job_name="j", state="Succeeded", result=model)
    verdict = status.judge(model, None)
    chosen = status.serving_target([model], None)
    rollout = status.Rollout(complete=True, replicas=1, ready_replicas=1)
    fine = status.Monitoring(True, "Configured", "monitoring is in place as the spec asks")
    broken = status.Monitoring(False, "NotConfigured", "prometheus.yml is not valid YAML")

    ready = status.outcome(spec, training, verdict, chosen, rollout, fine)
    told = status.outcome(spec, training, verdict, chosen, rollout, broken)
    assert (ready.phase, told.phase) == ("Ready", "Ready")
    assert (
        told.message
        == f"{ready.message}; monitoring not configured: prometheus.yml is not valid YAML"
    )
    kinds = status.conditions([], 1, (True, "Promoted", ""), (True, "RolledOut", ""), told, broken)
    assert [(c.type, c.status) for c in kinds] == [
        ("Trained", "True"),
        ("Deployed", "True"),
        ("Ready", "True"),
        ("Monitored", "False"),
    ]
    # A failure that stops the reconcile keeps the Monitored condition as it was.
    failed = status.failed(
        api.ModelDeploymentStatus(conditions=kinds), "WriteRefused", "refused", 2
    )
    assert [c.type for c in failed.conditions][-1] == "Monitored"
    assert failed.conditions[-1].status == "False"


def stuck_pod(name: str, created: str, **pod_status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": "Pending", **pod_status},
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"containerStatuses": [{"state": {"waiting": {"reason": reason, "message": message}}}]}


NEVER_PULL = 'Container image "modelops/nope:1" is not present with pull policy of Never'


def test_a_container_that_cannot_get_its_image_is_a_problem_in_the_kubelets_words() -> None:
    problem = status.pod_problem(
        [stuck_pod("s-1", "2026-11-23T08:00:00Z", **waiting("ErrImageNeverPull", NEVER_PULL))]
    )
    assert problem == f"pod s-1: ErrImageNeverPull: {NEVER_PULL}"


def test_an_unschedulable_pod_is_found_with_since_when_and_an_evicted_pod_is_a_problem() -> None:
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient memory.",
        "lastTransitionTime": "2026-11-23T12:00:00Z",
    }
    unplaced = stuck_pod("s-1", "2026-11-23T08:00:00Z", conditions=[unschedulable])
    assert status.pod_problem([unplaced]) is None, "not until it has lasted"
    assert status.unschedulable_pods([unplaced]) == [
        (
            unplaced,
            datetime.datetime(2026, 11, 23, 12, tzinfo=datetime.UTC),
            "0/1 nodes are available: 1 Insufficient memory.",
        )
    ]
    evicted = stuck_pod("s-2", "2026-11-23T08:00:00Z", reason="Evicted", message="low memory")
    evicted["status"]["phase"] = "Failed"
    assert status.pod_problem([evicted]) == "pod s-2 was evicted: low memory"
    # Once a pod replaces it, the eviction is history.
    replacement = stuck_pod("s-3", "2026-11-23T08:01:00Z", **waiting("ContainerCreating"))
    assert status.pod_problem([evicted, replacement]) is None


def test_pods_starting_normally_or_terminating_are_no_problem() -> None:
    starting = stuck_pod("s-1", "2026-11-23T08:00:00Z", **waiting("ContainerCreating"))
    leaving = stuck_pod("s-2", "2026-11-23T08:00:00Z", **waiting("CrashLoopBackOff"))
    leaving["metadata"]["deletionTimestamp"] = "2026-11-23T08:01:00Z"
    assert status.pod_problem([starting, leaving]) is None


def test_the_newest_troubled_pod_speaks() -> None:
    older = stuck_pod("s-1", "2026-11-23T08:00:00Z", **waiting("CrashLoopBackOff"))
    newer = stuck_pod("s-2", "2026-11-23T08:05:00Z", **waiting("ImagePullBackOff"))
    assert status.pod_problem([older, newer]) == "pod s-2: ImagePullBackOff"


def test_a_running_job_whose_pod_cannot_start_says_why() -> None:
    stuck = stuck_pod("t-1", "2026-11-23T08:00:00Z", **waiting("ErrImageNeverPull", NEVER_PULL))
    stuck["metadata"]["ownerReferences"] = pod("Pending", "")["metadata"]["ownerReferences"]
    training = status.training_status(job(None), [stuck], "h")
    assert training.state == "Running"
    assert training.message == f"pod t-1: ErrImageNeverPull: {NEVER_PULL}"


def test_a_crash_loop_is_told_in_the_last_runs_own_words() -> None:
    fetch_error = "error: s3://models/ns/iris/v1/model.joblib has sha256 0…, expected f…"
    crashing = {
        "initContainerStatuses": [
            {
                "name": "fetch-model",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
                "lastState": {"terminated": {"exitCode": 1, "message": fetch_error + "\n"}},
            }
        ]
    }
    problem = status.pod_problem([stuck_pod("s-1", "2026-11-23T08:00:00Z", **crashing)])
    assert problem == f"pod s-1: CrashLoopBackOff: {fetch_error}"


def test_a_provided_model_has_nothing_to_train_and_is_ready_once_rolled_out() -> None:
    source = api.ModelSource(uri="https://example.org/iris.joblib", sha256="c" * 64)
    spec = api.ModelDeploymentSpec(model=source)
    history = status.promote([], status.provided_record(source))
    chosen = status.serving_target(history, None)
    fine = status.Monitoring(True, "Configured", "")

    assert status.trained_condition(None, None)[:2] == (True, "ModelProvided")
    rolling = status.Rollout(complete=False, replicas=2, ready_replicas=0)
    assert status.outcome(spec, None, None, chosen, rolling, fine).phase == "Deploying"
    done = status.Rollout(complete=True, replicas=2, ready_replicas=2)
    ready = status.outcome(spec, None, None, chosen, done, fine)
    assert (ready.phase, ready.message) == ("Ready", "serving vcccccccccccc, 2/2 replicas ready")
    stuck = status.Rollout(False, 2, 0, "pod s-1: CrashLoopBackOff: error: HTTP 404")
    assert status.outcome(spec, None, None, chosen, stuck, fine).phase == "Failed"


def test_the_trainers_mlflow_run_reaches_the_record() -> None:
    logged = {
        "runId": "5f6b6ca4",
        "runUrl": "http://mlflow:5000/#/experiments/1/runs/5f6b6ca4",
        "modelUri": "models:/ns.iris/2",
        "modelUrl": "http://mlflow:5000/#/models/ns.iris/versions/2",
    }
    summary = {
        "version": "v0123456789ab",
        "sha256": "f" * 64,
        "artifactPath": "s3://models/ns/iris/v0123456789ab",
        "metrics": {"accuracy": 0.95},
        "trainedAt": "2026-12-04T10:00:00Z",
        "mlflow": logged,
    }
    record = status.parse_summary(json.dumps(summary))
    assert record.mlflow is not None and record.mlflow.to_wire() == logged
    assert status.parse_summary(json.dumps(summary | {"mlflow": None})).mlflow is None


MULTI_ATTACH = (
    'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) iris-server-a'
)


def creating_pod(name: str, scheduled: str) -> dict[str, Any]:
    pod = stuck_pod(name, scheduled, **waiting("ContainerCreating"))
    pod["metadata"]["uid"] = f"uid-{name}"
    pod["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}
    ]
    return pod


def test_scheduled_pods_whose_containers_are_being_made_are_found_with_when_they_were_scheduled() -> (
    None
):
    old, new = (
        creating_pod("old", "2026-11-23T08:00:00Z"),
        creating_pod("new", "2026-11-23T08:00:55Z"),
    )
    running = creating_pod("running", "2026-11-23T08:00:00Z")
    running["status"]["containerStatuses"] = [{"state": {"running": {}}}]
    scheduled_at = datetime.datetime(2026, 11, 23, 8, 0, tzinfo=datetime.UTC)
    assert status.pods_being_made([old, new, running]) == [
        (new, scheduled_at + datetime.timedelta(seconds=55)),
        (old, scheduled_at),
    ]
    # Nothing in the pod's status says why: the scheduler and kubelet's own reading is none.
    assert status.pod_problem([old]) is None


def test_the_pods_newest_warning_event_is_its_problem() -> None:
    events = [
        {
            "type": "Normal",
            "reason": "Scheduled",
            "message": "assigned",
            "lastTimestamp": "2026-11-23T08:00:59Z",
            "metadata": {},
        },
        {
            "type": "Warning",
            "reason": "FailedMount",
            "message": "timed out",
            "lastTimestamp": "2026-11-23T08:00:10Z",
            "metadata": {},
        },
        {
            "type": "Warning",
            "reason": "FailedAttachVolume",
            "message": MULTI_ATTACH,
            "lastTimestamp": "2026-11-23T08:00:30Z",
            "metadata": {},
        },
        # About a container already made, which the watch's copy of the pod may not show yet.
        {
            "type": "Warning",
            "reason": "Unhealthy",
            "message": "Readiness probe failed: connect: connection refused",
            "lastTimestamp": "2026-11-23T08:00:40Z",
            "metadata": {},
        },
    ]
    pod = creating_pod("iris-server-b", "2026-11-23T08:00:00Z")
    assert (
        status.event_problem(pod, events)
        == f"pod iris-server-b: FailedAttachVolume: {MULTI_ATTACH}"
    )
    assert status.event_problem(pod, events[:1]) is None


def test_the_node_authorizers_passing_refusal_is_no_problem() -> None:
    refusal = (
        "Unable to attach or mount volumes: unmounted volumes=[models]: error processing PVC "
        "ns/iris-models: failed to fetch PVC from API server: persistentvolumeclaims "
        '"iris-models" is forbidden: User "system:node:worker2" cannot get resource '
        '"persistentvolumeclaims" in API group "" in the namespace "ns": no relationship found '
        "between node 'worker2' and this object"
    )
    event = {
        "type": "Warning",
        "reason": "FailedMount",
        "message": refusal,
        "lastTimestamp": "2026-11-23T08:00:10Z",
        "metadata": {},
    }
    pod = creating_pod("iris-train-a", "2026-11-23T08:00:00Z")
    assert status.event_problem(pod, [event]) is None


def test_the_trainers_search_reaches_the_record(tmp_path: Path) -> None:
    from modelops_trainer.training import train

    spec = {
        "dataset": {"builtin": "iris"},
        "estimator": "DecisionTreeClassifier",
        "search": {
            "trials": 3,
            "timeoutSeconds": 60,
            "parameters": {"max_depth": {"type": "Int", "low": 1, "high": 4}},
        },
    }
    summary = train(spec, tmp_path, "iris")
    record = status.parse_summary(json.dumps(summary))
    assert record.search is not None and record.search.to_wire() == summary["search"]
    api.TrainingSpec.model_validate(spec)


def test_a_status_patch_nulls_out_what_is_no_longer_reported_at_any_depth() -> None:
    from modelops_operator.reconcile import merge_patch

    old = {
        "phase": "Ready",
        "endpoint": "http://iris",
        "model": {"version": "v1", "mlflow": {"runId": "a", "alias": "champion"}},
        "history": [{"version": "v1"}],
    }
    new = {
        "phase": "Deploying",
        "model": {"version": "v2", "mlflow": {"runId": "b"}},
        "history": [],
    }
    assert merge_patch(old, new) == {
        "endpoint": None,
        "phase": "Deploying",
        "model": {"version": "v2", "mlflow": {"runId": "b", "alias": None}},
        "history": [],
    }


def test_a_version_serves_since_its_rollout_completed_until_another_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(["2026-12-01T10:00:00Z", "2026-12-02T10:00:00Z", "2026-12-03T10:00:00Z"])
    monkeypatch.setattr(status, "now", lambda: next(clock))
    old, new = record("v000000000001"), record("v000000000002")
    history = [new, old]

    # Rolling out: not serving yet.
    target, kept = status.with_serving_since(None, new, history, rollout_complete=False)
    assert target.served_since is None and kept == history
    # Complete: since now, in history too; a later reconcile (or a new rollout of the same
    # version, for new resources) keeps it.
    target, history = status.with_serving_since(target, new, history, rollout_complete=True)
    assert target.served_since == history[0].served_since == "2026-12-01T10:00:00Z"
    same, _ = status.with_serving_since(target, new, history, rollout_complete=False)
    assert same.served_since == "2026-12-01T10:00:00Z"

    # A pin back to the old version: not serving while it rolls out, then a new period, and
    # the version it took over from keeps its last start.
    pinned, history = status.with_serving_since(target, history[1], history, rollout_complete=False)
    assert pinned.served_since is None
    pinned, history = status.with_serving_since(pinned, history[1], history, rollout_complete=True)
    assert pinned.served_since == "2026-12-02T10:00:00Z"
    assert [entry.served_since for entry in history] == [
        "2026-12-01T10:00:00Z",
        "2026-12-02T10:00:00Z",
    ]
    # Each reconcile promotes the run's result again: it keeps when it served.
    again = status.promote(history, record("v000000000002"))
    assert again[0].served_since == "2026-12-01T10:00:00Z"
