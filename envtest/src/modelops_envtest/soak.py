"""A soak of the operator on the test control plane: random valid changes to many models
(hyperparameters, pins, replicas, schedules, retrain tokens, deletions and new models) while
the operator is killed now and then; after each burst, once the models have settled, every
invariant is checked against what the cluster holds:

- served: the serving Deployment's pods carry the version status.model names;
- ready: a Ready model has a Deployment with ready pods;
- monitored: one scrape job and one dashboard for each live model, none for a deleted one;
- jobs: no training Job but those history keeps and the current run;
- pinned: a pinned version is in history and is the one served (its files stay: the trainer
  keeps every version history holds, and only history);
- gone: a deleted model leaves no child behind.

The kubelet's part is played as the envtest does (`Kubelet`): a training pod ends with the
real trainer's summary for the spec its Job carries, a serving pod is marked Ready.
`bench/operator/soak.py` runs it from the command line; tests/operator/test_soak.py runs a short
one in the suite."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from modelops_operator import constants, registration
from modelops_operator.monitoring.prometheus import scrape_job_name
from modelops_operator.settings import Settings

from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess, install_prerequisites

NAMESPACE = "soak"
SETTINGS = Settings()
TRAINING_SELECTOR = f"{constants.LABEL_COMPONENT}=training"
SERVER_SELECTOR = f"{constants.LABEL_COMPONENT}=server"
# Small forests: a training run takes a fraction of a second, and every variant passes the gate.
HYPERPARAMETERS = {"n_estimators": (5, 10, 20), "max_depth": (3, 4, 5)}
SCHEDULE = "* * * * *"
KUBELET_PERIOD_SECONDS = 0.5


def model_manifest(name: str, rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "training": {
                "dataset": {"builtin": "iris"},
                "estimator": "RandomForestClassifier",
                "hyperparameters": random_hyperparameters(rng),
                "qualityGate": {"metric": "accuracy", "threshold": 0.8},
            },
            "serving": {"replicas": rng.randint(1, 3)},
        },
    }


def random_hyperparameters(rng: random.Random) -> dict[str, int]:
    return {name: rng.choice(values) for name, values in HYPERPARAMETERS.items()}


@dataclasses.dataclass(frozen=True)
class Violation:
    model: str
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.model}: {self.invariant}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class World:
    """What the cluster holds of the soak's namespace, read once for a check."""

    models: dict[str, dict[str, Any]]
    deployments: dict[str, dict[str, Any]]
    jobs: dict[str, list[str]]
    scrape_jobs: Counter[str]
    dashboards: Counter[str]
    children: dict[str, list[str]]

    @classmethod
    def read(cls, api: kubernetes.client.ApiClient) -> World:
        custom = kubernetes.client.CustomObjectsApi(api)
        apps = kubernetes.client.AppsV1Api(api)
        batch = kubernetes.client.BatchV1Api(api)
        core = kubernetes.client.CoreV1Api(api)

        def items(lister: Callable[..., Any], selector: str) -> list[dict[str, Any]]:
            """The objects selected, but for those being deleted (as good as gone)."""
            listed = api.sanitize_for_serialization(lister(NAMESPACE, label_selector=selector))
            return [
                item for item in listed["items"] if not item["metadata"].get("deletionTimestamp")
            ]

        def model(item: dict[str, Any]) -> str:
            return str(item["metadata"]["labels"][constants.LABEL_MODEL])

        listed: dict[str, Any] = custom.list_namespaced_custom_object(  # type: ignore[assignment]
            constants.GROUP, constants.VERSION, NAMESPACE, constants.PLURAL
        )
        jobs: dict[str, list[str]] = {}
        for job in items(batch.list_namespaced_job, TRAINING_SELECTOR):
            jobs.setdefault(model(job), []).append(job["metadata"]["name"])
        managed = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"
        listers = {
            "Deployment": apps.list_namespaced_deployment,
            "Service": core.list_namespaced_service,
            "ConfigMap": core.list_namespaced_config_map,
            "Job": batch.list_namespaced_job,
            "Pod": core.list_namespaced_pod,
        }
        return cls(
            models={item["metadata"]["name"]: item for item in listed["items"]},
            deployments={
                model(item): item
                for item in items(apps.list_namespaced_deployment, SERVER_SELECTOR)
            },
            jobs=jobs,
            scrape_jobs=scrape_jobs(core),
            dashboards=Counter(
                model(item)
                for item in items(core.list_namespaced_config_map, "grafana_dashboard=1")
            ),
            children=_grouped(
                (model(item), f"{kind}/{item['metadata']['name']}")
                for kind, lister in listers.items()
                for item in items(lister, managed)
            ),
        )


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def scrape_jobs(core: kubernetes.client.CoreV1Api) -> Counter[str]:
    """How many times each scrape job is in the scrape config files."""
    found: Counter[str] = Counter()
    for namespace, name in registration.scrape_config_maps(SETTINGS):
        try:
            configmap = core.read_namespaced_config_map(name, namespace)
        except kubernetes.client.exceptions.ApiException as error:
            if error.status == 404:
                continue
            raise
        text = (configmap.data or {}).get(registration.scrape_file_key(name), "")
        found.update(
            job["job_name"] for job in (yaml.safe_load(text) or {}).get("scrape_configs") or []
        )
    return found


def unsettled(world: World, deleted: set[str]) -> list[str]:
    """The models not yet where their spec says: not Ready for their generation, training,
    or deleted and not gone."""
    waiting = []
    for name, model in world.models.items():
        status = model.get("status") or {}
        if (
            status.get("phase") != "Ready"
            or status.get("observedGeneration") != model["metadata"]["generation"]
            or (status.get("training") or {}).get("state") == "Running"
        ):
            waiting.append(f"{name} {status.get('phase')}: {status.get('message', '')}")
    for name in deleted:
        if name in world.models:
            waiting.append(f"{name} deleted, not gone")
        elif children := world.children.get(name):
            # The garbage collector's work, in its time (on a fresh control plane it learns of
            # the CRD, and so of the models' deletions, only at its next discovery, in 30 s).
            waiting.append(f"{name} deleted, its children going: {', '.join(children)}")
    return waiting


def violations(world: World, deleted: set[str]) -> list[Violation]:
    """Every invariant of the module's docstring that the world breaks."""
    found: list[Violation] = []
    for name, model in world.models.items():
        status = model.get("status") or {}
        served = status.get("model") or {}
        deployment = world.deployments.get(name)
        template_version = (
            deployment["spec"]["template"]["metadata"]["labels"].get(constants.LABEL_VERSION)
            if deployment
            else None
        )
        if served and template_version != served.get("version"):
            found.append(
                Violation(name, "served", f"pods serve {template_version}, status {served}")
            )
        if status.get("phase") == "Ready" and not (
            deployment and (deployment.get("status") or {}).get("readyReplicas")
        ):
            found.append(Violation(name, "ready", "Ready without a Deployment with ready pods"))
        job_name = scrape_job_name(NAMESPACE, name)
        if world.scrape_jobs[job_name] != 1 or world.dashboards[name] != 1:
            found.append(
                Violation(
                    name,
                    "monitored",
                    f"{world.scrape_jobs[job_name]} scrape jobs, {world.dashboards[name]} "
                    "dashboards",
                )
            )
        history = status.get("history") or []
        kept = {entry.get("jobName") for entry in history}
        kept.add((status.get("training") or {}).get("jobName"))
        if stray := sorted(set(world.jobs.get(name, [])) - kept):
            found.append(Violation(name, "jobs", f"Jobs outside history and the run: {stray}"))
        pin = model["spec"].get("serving", {}).get("modelVersion")
        versions = [entry["version"] for entry in history]
        if pin and (pin not in versions or served.get("version") != pin):
            found.append(
                Violation(name, "pinned", f"{pin} pinned, history {versions}, serving {served}")
            )
    for name in deleted:
        job = scrape_job_name(NAMESPACE, name)
        if name not in world.models and world.scrape_jobs[job]:
            found.append(Violation(name, "gone", f"scrape job {job} left behind"))
    return found


class PlayedKubelet:
    """The kubelet's part, every half second in a thread: each training pod ends with the
    real trainer's summary for its Job's spec; each serving pod is marked Ready."""

    def __init__(self, api: kubernetes.client.ApiClient, artifacts: Path) -> None:
        self.kubelet = Kubelet(api)
        self.artifacts = artifacts
        self.summaries: dict[str, dict[str, Any]] = {}
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []

    def summary(self, pod: Any) -> dict[str, Any]:
        from modelops_trainer import train

        container = pod.spec.containers[0]
        spec = next(env.value for env in container.env if env.name == "MODELOPS_TRAINING_SPEC")
        name = container.args[container.args.index("--name") + 1]
        key = json.dumps([spec, name])
        if key not in self.summaries:
            self.summaries[key] = train(json.loads(spec), self.artifacts, name, NAMESPACE)
        return self.summaries[key]

    def tick(self) -> None:
        for pod in self.kubelet.pods(NAMESPACE, TRAINING_SELECTOR):
            if pod.status.phase in ("Succeeded", "Failed") or pod.metadata.deletion_timestamp:
                continue
            with contextlib.suppress(kubernetes.client.exceptions.NotFoundException):
                self.kubelet.terminate(pod, 0, json.dumps(self.summary(pod)))
        self.kubelet.make_ready(NAMESPACE)

    def run(self) -> None:
        while not self.stopping.wait(KUBELET_PERIOD_SECONDS):
            try:
                self.tick()
            except kubernetes.client.exceptions.ApiException as error:
                if error.status not in (404, 409):
                    self.errors.append(error)

    @contextlib.contextmanager
    def playing(self) -> Iterator[None]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stopping.set()
            thread.join()


@dataclasses.dataclass
class Report:
    models: int
    minutes: float
    rounds: int = 0
    changes: Counter[str] = dataclasses.field(default_factory=Counter)
    operator_kills: int = 0
    settle_seconds: list[float] = dataclasses.field(default_factory=list)
    violations: list[Violation] = dataclasses.field(default_factory=list)

    def summary_line(self) -> str:
        settle = sorted(self.settle_seconds) or [0.0]
        changes = sum(self.changes.values())
        return (
            f"soak: {self.models} models, {self.minutes:g} min, {self.rounds} rounds, "
            f"{changes} changes ({', '.join(f'{k} {v}' for k, v in sorted(self.changes.items()))}), "
            f"{self.operator_kills} operator kills, settled in median "
            f"{settle[len(settle) // 2]:.1f} s (max {settle[-1]:.1f} s), "
            f"{len(self.violations)} invariant violations"
        )


class Soak:
    """Random valid changes to `models` models for `minutes`, with the operator killed now
    and then; each round's violations are kept in the report."""

    def __init__(
        self,
        control_plane: ControlPlane,
        operator: OperatorProcess,
        models: int,
        minutes: float,
        seed: int,
        settle_timeout: float = 180.0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.control_plane = control_plane
        self.operator = operator
        self.api = control_plane.api_client()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.rng = random.Random(seed)
        self.settle_timeout = settle_timeout
        self.log = log
        self.report = Report(models, minutes)
        self.live: set[str] = set()
        self.deleted: set[str] = set()
        self.created = 0
        self.count = models

    def create(self) -> None:
        name = f"s{self.created:03d}"
        self.created += 1
        self.custom.create_namespaced_custom_object(
            constants.GROUP, constants.VERSION, NAMESPACE, constants.PLURAL,
            model_manifest(name, self.rng),
        )  # fmt: skip
        self.live.add(name)
        self.deleted.discard(name)

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            constants.GROUP, constants.VERSION, NAMESPACE, constants.PLURAL, name, patch
        )

    def change(self) -> None:
        """One random valid change; the deleted models are replaced by new ones."""
        name = self.rng.choice(sorted(self.live))
        model: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            constants.GROUP, constants.VERSION, NAMESPACE, constants.PLURAL, name
        )
        history = [entry["version"] for entry in (model.get("status") or {}).get("history", [])]
        pinned = model["spec"].get("serving", {}).get("modelVersion")
        scheduled = model["spec"]["training"].get("schedule")
        kind = self.rng.choice(
            ["hyperparameters", "pin", "replicas", "schedule", "retrain", "delete"]
        )
        if kind == "hyperparameters":
            hyperparameters = random_hyperparameters(self.rng)
            self.patch(name, {"spec": {"training": {"hyperparameters": hyperparameters}}})
        elif kind == "pin":
            pin = None if pinned or not history else self.rng.choice(history)
            self.patch(name, {"spec": {"serving": {"modelVersion": pin}}})
        elif kind == "replicas":
            self.patch(name, {"spec": {"serving": {"replicas": self.rng.randint(1, 3)}}})
        elif kind == "schedule":
            schedule = None if scheduled else SCHEDULE
            self.patch(name, {"spec": {"training": {"schedule": schedule}}})
        elif kind == "retrain":
            token = uuid.uuid4().hex[:8]
            self.patch(name, {"metadata": {"annotations": {constants.ANNOTATION_RETRAIN: token}}})
        else:
            self.custom.delete_namespaced_custom_object(
                constants.GROUP, constants.VERSION, NAMESPACE, constants.PLURAL, name
            )
            self.live.discard(name)
            self.deleted.add(name)
            self.create()
        self.report.changes[kind] += 1

    def settle(self) -> list[str]:
        """Wait until every model is where its spec says; what still is not, at the timeout."""
        started = time.monotonic()
        while True:
            waiting = unsettled(World.read(self.api), self.deleted)
            if not waiting or time.monotonic() - started > self.settle_timeout:
                self.report.settle_seconds.append(time.monotonic() - started)
                return waiting
            time.sleep(1)

    def round(self) -> None:
        changes = self.rng.randint(1, max(2, self.count // 5))
        # One round in three, the operator is killed (no grace) after one of its changes.
        killed_after = self.rng.randrange(changes) if self.rng.random() < 1 / 3 else None
        for index in range(changes):
            self.change()
            if index == killed_after:
                self.operator.stop(kill=True)
                self.operator.start()
                self.report.operator_kills += 1
            time.sleep(self.rng.uniform(0, 1))
        waiting = self.settle()
        found = [Violation(line.split(" ")[0], "settled", line) for line in waiting]
        if not waiting:
            found = violations(World.read(self.api), self.deleted)
        self.report.rounds += 1
        self.report.violations += found
        for violation in found:
            self.log(f"round {self.report.rounds}: {violation}")

    def run(self) -> Report:
        deadline = time.monotonic() + self.report.minutes * 60
        for _ in range(self.count):
            self.create()
        settled = self.settle()
        assert not settled, f"the models did not go Ready at first: {settled}"
        while time.monotonic() < deadline:
            self.round()
        return self.report


def soak(
    control_plane: ControlPlane,
    models: int,
    minutes: float,
    seed: int,
    log: Callable[[str], None] = print,
) -> Report:
    """The soak on `control_plane` (CRDs and the scrape files' namespace made here), with an
    operator of its own and the kubelet played."""
    install_prerequisites(control_plane)
    monitoring_namespace = registration.scrape_config_maps(SETTINGS)[0][0]
    for namespace in (monitoring_namespace, NAMESPACE):
        control_plane.kubectl("create", "namespace", namespace, check=False)
    operator = OperatorProcess(control_plane).start()
    api = control_plane.api_client()
    try:
        with tempfile.TemporaryDirectory(prefix="modelops-soak-") as artifacts:
            kubelet = PlayedKubelet(api, Path(artifacts))
            with kubelet.playing():
                report = Soak(control_plane, operator, models, minutes, seed, log=log).run()
            report.violations += [
                Violation("-", "kubelet", repr(error)) for error in kubelet.errors
            ]
            return report
    finally:
        operator.stop()
