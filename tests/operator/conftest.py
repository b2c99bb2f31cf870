"""The operator under test, run as a real process against the real control plane, with the
kubelet's part played through the API (see modelops_envtest.kubelet)."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess
from modelops_envtest.waiting import wait_until
from modelops_operator import registration
from modelops_operator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "deploy" / "samples"


@contextlib.contextmanager
def taken_over(
    control_plane: ControlPlane, operator: OperatorProcess, **env: str
) -> Iterator[OperatorProcess]:
    """A second operator, with `env`'s settings, acting alone (peering: the newest start
    leads) while the block runs; then the session's operator resumes."""
    newer = OperatorProcess(control_plane, **env).start()
    try:
        wait_until(
            lambda: "Pausing operations in favour of" in operator.log(),
            what="the session's operator to pause",
        )
        yield newer
    finally:
        newer.stop()
        wait_until(
            lambda: "Resuming operations after the pause" in operator.log(),
            what="the session's operator to resume",
        )


@pytest.fixture(scope="session")
def kubelet(api_client: kubernetes.client.ApiClient) -> Kubelet:
    return Kubelet(api_client)


class Models:
    """ModelDeployments in one namespace, driven with kubectl as a user would."""

    def __init__(self, control_plane: ControlPlane, namespace: str) -> None:
        self.cp = control_plane
        self.namespace = namespace

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", self.namespace, *args, stdin=stdin, check=check)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", "mdep", name, "-o", "json").stdout)
        return found

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == kind), {})

    def wait_for_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return wait_until(
            lambda: (status := self.status(name)).get("phase") == phase and status,
            timeout=timeout,
            what=f"{name} to reach {phase} (now {self.status(name).get('phase')}: {self.status(name).get('message')})",
        )

    def training_job(self, name: str) -> str:
        """The training Job for the resource's current generation."""

        def current_job() -> str | None:
            body = self.get(name)
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"]["generation"]:
                return None
            job: str | None = status.get("training", {}).get("jobName")
            return job

        return str(wait_until(current_job, what=f"{name}'s training Job"))

    def jobs(self, name: str) -> list[str]:
        out = self.kubectl("get", "jobs", "-l", f"modelops.dev/model={name}", "-o", "name").stdout
        return out.split()


@pytest.fixture
def models(control_plane: ControlPlane, namespace: str, operator: OperatorProcess) -> Models:
    return Models(control_plane, namespace)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SAMPLES / f"{name}.yaml").read_text())
    return loaded


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The real trainer's summary for a training spec (trained once per spec and session)."""
    from modelops_trainer import train

    root = tmp_path_factory.mktemp("artifacts")
    cache: dict[str, dict[str, Any]] = {}

    def run(training: dict[str, Any], name: str) -> dict[str, Any]:
        key = json.dumps([training, name], sort_keys=True)
        if key not in cache:
            cache[key] = train(training, root, name=name, namespace="default")
        return cache[key]

    return run


def deploy_to_ready(
    models: Models, kubelet: Kubelet, trained: Any, manifest: dict[str, Any]
) -> dict[str, Any]:
    name = manifest["metadata"]["name"]
    models.apply(manifest)
    job = models.training_job(name)
    summary = trained(manifest["spec"]["training"], name)
    kubelet.finish_training(models.namespace, job, summary)
    models.wait_for_phase(name, "Deploying")
    return serve_to_ready(models, kubelet, name)


def serve_to_ready(models: Models, kubelet: Kubelet, name: str) -> dict[str, Any]:
    """Play the kubelet for the model's serving pods until it is Ready; its status."""
    kubelet.serve_until(
        models.namespace,
        name,
        lambda: models.status(name).get("phase") == "Ready",
        what=f"{name} Ready",
    )
    return models.wait_for_phase(name, "Ready")


# -- the scrape config files and dashboards ---------------------------------------------

SETTINGS = Settings()
SCRAPE_CONFIGMAPS = registration.scrape_config_maps(SETTINGS)
MONITORING_NS = SCRAPE_CONFIGMAPS[0][0]


def configmap_data(cp: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    found = cp.kubectl("-n", namespace, "get", "configmap", name, "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    data: dict[str, str] = json.loads(found.stdout).get("data") or {}
    return data


def placed(cp: ControlPlane) -> Settings:
    """SETTINGS with the operator's placement key (kept beside the scrape config files), made
    here as the operator would make it if the operator has not needed it yet."""
    namespace, name = registration.placement_config_map(SETTINGS)
    made = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {registration.PLACEMENT_KEY: secrets.token_hex(32)},
    }
    cp.kubectl("create", "-f", "-", stdin=json.dumps(made), check=False)
    key = configmap_data(cp, namespace, name)[registration.PLACEMENT_KEY]
    return SETTINGS.model_copy(update={"scrape_placement_key": key})


def scrape_files(cp: ControlPlane) -> dict[str, str]:
    """The scrape config files the operator keeps, by ConfigMap name (one request for all)."""
    listed = json.loads(cp.kubectl("-n", MONITORING_NS, "get", "configmaps", "-o", "json").stdout)
    ours = {name for _, name in SCRAPE_CONFIGMAPS}
    return {
        name: (item.get("data") or {}).get(registration.scrape_file_key(name), "")
        for item in listed["items"]
        if (name := item["metadata"]["name"]) in ours
    }


def scrape_jobs(cp: ControlPlane) -> list[tuple[str, str]]:
    """(ConfigMap name, job name) of every scrape job in the files."""
    return [
        (configmap, job["job_name"])
        for configmap, text in scrape_files(cp).items()
        for job in (yaml.safe_load(text) or {}).get("scrape_configs") or []
    ]


def scrape_job_names(cp: ControlPlane) -> list[str]:
    return [job for _, job in scrape_jobs(cp)]


def dashboards(cp: ControlPlane, namespace: str) -> list[str]:
    """The dashboard ConfigMaps of the namespace, as Grafana's sidecar finds them."""
    found = cp.kubectl(
        "-n", namespace, "get", "configmaps", "-l", "grafana_dashboard=1", "-o", "name"
    )
    return found.stdout.split()


def apply_copies(models: Models, count: int) -> list[str]:
    """`count` copies of the iris sample, m00, m01, ..., applied in one request; their names."""
    names = [f"m{index:02d}" for index in range(count)]
    items = []
    for name in names:
        item = sample("iris")
        item["metadata"] = {"name": name}
        items.append(item)
    models.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    return names


def registered(cp: ControlPlane, namespace: str) -> tuple[list[str], int]:
    """The scrape jobs of the namespace's models (sorted) and how many dashboards they have."""
    jobs = sorted(job for job in scrape_job_names(cp) if job.startswith(f"modelops/{namespace}/"))
    return jobs, len(dashboards(cp, namespace))


@pytest.fixture
def monitoring_namespace(control_plane: ControlPlane) -> str:
    # Other tests' namespaces may still be going away: start from a quiet cluster.
    wait_until(
        lambda: not control_plane.kubectl("get", "mdep", "-A", "-o", "name").stdout.strip(),
        timeout=180,
        what="other tests' ModelDeployments to be gone",
    )
    return create_monitoring_namespace(control_plane)


def create_monitoring_namespace(control_plane: ControlPlane) -> str:
    """The namespace of the scrape config files, which the operator creates in it."""
    control_plane.kubectl("create", "namespace", MONITORING_NS, check=False)
    return MONITORING_NS
