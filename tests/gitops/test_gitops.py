"""A model's life through git alone: the root Application brings the platform and then the
models; commits retrain, fail a quality gate and are reverted, pin a version; a hand edit is
healed; a deleted file prunes its model with its scrape job and dashboard. Argo CD is the real
one (built here), and so is its judgement of health: the project's Lua, evaluated by Argo CD."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from gitops_env import MODELS_NAMESPACE, GitOps
from in_cluster import start_client
from modelops_envtest import argocd
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until
from modelops_operator import constants, registration
from modelops_operator.monitoring.grafana import dashboard_key
from modelops_operator.monitoring.prometheus import scrape_job_name
from modelops_operator.settings import Settings

pytestmark = pytest.mark.timeout(1800)

APPS = ("modelops-root", "modelops-platform", "modelops-models")
MODELS = ("diabetes", "iris", "wine")
IRIS = "deploy/samples/iris.yaml"
SYNC_TIMEOUT = 900
CHANGE_TIMEOUT = 300
# The operator's settings, in both places: the platform's (the base's defaults) on kind, the
# environment's on the control plane, where the operator runs as a local process.
SETTINGS = Settings()


def healthy_and_synced(gitops: GitOps) -> bool:
    return all(gitops.app_state(app) == ("Synced", "Healthy") for app in APPS)


def ready(model: dict[str, Any]) -> bool:
    status = model.get("status") or {}
    return status.get("phase") == "Ready" and status.get("observedGeneration") == model[
        "metadata"
    ].get("generation")


def iris_status(gitops: GitOps) -> dict[str, Any]:
    status: dict[str, Any] = gitops.model("iris").get("status") or {}
    return status


def wait_for(
    gitops: GitOps, condition: Callable[[], Any], what: str, timeout: float = CHANGE_TIMEOUT
) -> Any:
    """wait_until, failing with what Argo CD and the operator report."""
    try:
        return wait_until(condition, timeout=timeout, what=what)
    except AssertionError as error:
        states = {app: gitops.app_state(app) for app in APPS}
        models = {
            name: {
                key: (gitops.model(name).get("status") or {}).get(key)
                for key in ("phase", "message", "model")
            }
            for name in gitops.model_names()
        }
        raise AssertionError(
            f"{error}\napplications: {states}\nmodels: {models}\n"
            f"iris serves: {gitops.served_version('iris')}\n{gitops.logs()}"
        ) from error


def wait_synced(gitops: GitOps, what: str, timeout: float = CHANGE_TIMEOUT) -> None:
    wait_for(gitops, lambda: healthy_and_synced(gitops), what, timeout)


def serves(gitops: GitOps, model: str, version: str) -> bool:
    return gitops.served_version(model) == version


def edited_iris(gitops: GitOps, *replacements: tuple[str, str]) -> dict[str, str | None]:
    text = gitops.git.read(IRIS)
    for old, new in replacements:
        assert old in text, f"{IRIS} no longer holds {old!r}"
        text = text.replace(old, new)
    return {IRIS: text}


def test_the_root_app_syncs_the_platform_then_the_models(gitops: GitOps) -> None:
    gitops.kubectl("apply", "-f", str(gitops.git.work / "argocd" / "root.yaml"))
    wait_synced(gitops, "every Application Synced and Healthy", timeout=SYNC_TIMEOUT)
    # The root synced argocd/apps within its own project, not `default` (root.yaml holds it).
    assert gitops.app("modelops-root")["spec"]["project"] not in ("", "default")
    models = {name: gitops.model(name) for name in gitops.model_names()}
    assert sorted(models) == list(MODELS)
    assert all(ready(model) for model in models.values()), {
        name: (model.get("status") or {}).get("message") for name, model in models.items()
    }
    # Wave -1 before wave 1: the models' Application exists only once the platform synced.
    platform_history = gitops.app("modelops-platform")["status"]["history"]
    models_created = gitops.app("modelops-models")["metadata"]["creationTimestamp"]
    assert models_created >= platform_history[0]["deployedAt"]
    # The operator's scrape config files and dashboards never made Argo CD sync it again.
    assert len(platform_history) == 1, platform_history
    for name, model in models.items():
        wait_until(
            lambda name=name, model=model: serves(
                gitops, name, model["status"]["model"]["version"]
            ),
            timeout=60,
            what=f"{name}'s endpoint to answer with its version",
        )


# Argo CD as a Deployment is kind's alone: on the control plane it runs as local processes.
@pytest.mark.parametrize("gitops", [pytest.param("kind", marks=pytest.mark.kind)], indirect=True)
def test_no_pod_of_another_namespace_reaches_argo_cds_cache_its_repo_server_or_prometheus(
    gitops: GitOps, cluster: KindCluster
) -> None:
    """Argo CD's controller applies what it finds in Redis, and its repo server renders any
    repository; Prometheus's API lists every pod. Their NetworkPolicies admit their own clients
    alone (the controller, the repo server; Grafana): a pod of a tenant's namespace, which
    reaches the cluster's DNS, is refused (kube-router rejects, another enforcer may drop)."""
    dns = "kube-dns.kube-system.svc:53"
    redis = f"argocd-redis.{argocd.NAMESPACE}.svc:6379"
    repo_server = f"argocd-repo-server.{argocd.NAMESPACE}.svc:8081"
    prometheus = "prometheus.modelops-system.svc:9090"
    controller = start_client(
        cluster,
        argocd.NAMESPACE,
        labels={"app.kubernetes.io/name": "argocd-application-controller"},
    )
    grafana = start_client(cluster, "modelops-system", labels={"app.kubernetes.io/name": "grafana"})
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", tenant)
    try:
        wait_until(
            lambda: (
                controller.connections([redis, repo_server]) == {redis: "open", repo_server: "open"}
            ),
            timeout=30,
            what="Argo CD's controller to reach Redis and the repo server",
        )
        wait_until(
            lambda: grafana.connections([prometheus]) == {prometheus: "open"},
            timeout=30,
            what="Grafana to reach Prometheus",
        )
        met = start_client(cluster, tenant).connections([dns, redis, repo_server, prometheus])
    finally:
        cluster.kubectl("delete", "namespace", tenant, "--wait=false")
        for own in (controller, grafana):
            cluster.kubectl("-n", own.namespace, "delete", "pod", own.name, "--wait=false")
    assert met.pop(dns) == "open"
    assert set(met.values()) <= {"ConnectionRefusedError", "TimeoutError"}, met


def test_a_commit_retrains_and_the_new_version_is_served(gitops: GitOps) -> None:
    before = iris_status(gitops)["model"]["version"]
    pushed = time.monotonic()
    gitops.git.commit(
        "iris: 50 trees", edited_iris(gitops, ("n_estimators: 100", "n_estimators: 50"))
    )
    healths: list[str] = []

    def new_version_served() -> bool:
        health = gitops.app_state("modelops-models")[1]
        if not healths or healths[-1] != health:
            healths.append(health)
        version = iris_status(gitops).get("model", {}).get("version")
        return health == "Healthy" and version != before and serves(gitops, "iris", version)

    wait_for(gitops, new_version_served, "iris's new version served")
    print(f"[{gitops.where}] git push to new version served: {time.monotonic() - pushed:.1f}s")
    # The models' Application went through the operator's work, as the health check judged it.
    assert "Progressing" in healths and healths[-1] == "Healthy", healths
    assert iris_status(gitops)["history"][1]["version"] == before


def test_a_failing_quality_gate_degrades_keeps_serving_and_a_revert_heals(
    gitops: GitOps,
) -> None:
    serving = iris_status(gitops)["model"]["version"]
    failing = gitops.git.commit(
        "iris: stumps, held to 100% accuracy",
        edited_iris(gitops, ("max_depth: 5", "max_depth: 1"), ("threshold: 0.9", "threshold: 1.0")),
    )

    def degraded() -> dict[str, Any] | None:
        app = gitops.app("modelops-models")
        if (app.get("status") or {}).get("health", {}).get("status") != "Degraded":
            return None
        return next(
            resource
            for resource in app["status"]["resources"]
            if resource["kind"] == "ModelDeployment" and resource["name"] == "iris"
        )

    iris = wait_for(gitops, degraded, "the models' Application Degraded")
    assert iris["health"]["status"] == "Degraded"
    assert iris["health"]["message"] == iris_status(gitops)["message"]
    assert "accuracy" in iris["health"]["message"], iris["health"]["message"]
    assert iris_status(gitops)["model"]["version"] == serving
    assert serves(gitops, "iris", serving)

    gitops.git.revert(failing)
    wait_synced(gitops, "Healthy again after the revert")
    wait_for(gitops, lambda: ready(gitops.model("iris")), "iris Ready")
    version = iris_status(gitops)["model"]["version"]
    wait_until(lambda: serves(gitops, "iris", version), timeout=120, what="iris served")


def test_pinning_a_version_in_git_rolls_back_without_a_job(gitops: GitOps) -> None:
    status = iris_status(gitops)
    earlier = next(
        entry["version"]
        for entry in status["history"]
        if entry["version"] != status["model"]["version"]
    )
    jobs_before = gitops.kubectl(
        "-n", MODELS_NAMESPACE, "get", "jobs", "-l", "modelops.dev/model=iris", "-o", "name"
    ).stdout.split()
    gitops.git.commit(
        f"iris: serve {earlier}",
        edited_iris(gitops, ("  serving:\n", f"  serving:\n    modelVersion: {earlier}\n")),
    )
    wait_until(
        lambda: (
            iris_status(gitops).get("model", {}).get("version") == earlier
            and ready(gitops.model("iris"))
            and serves(gitops, "iris", earlier)
        ),
        timeout=CHANGE_TIMEOUT,
        what=f"iris serving {earlier}",
    )
    wait_synced(gitops, "Healthy on the pinned version")
    jobs_after = gitops.kubectl(
        "-n", MODELS_NAMESPACE, "get", "jobs", "-l", "modelops.dev/model=iris", "-o", "name"
    ).stdout.split()
    assert jobs_after == jobs_before


def test_a_hand_edit_is_healed_and_the_operators_edits_stay_synced(gitops: GitOps) -> None:
    gitops.kubectl(
        "-n", MODELS_NAMESPACE, "patch", "mdep", "iris", "--type", "merge",
        "-p", '{"spec": {"serving": {"replicas": 1}}}',
    )  # fmt: skip
    wait_until(
        lambda: gitops.model("iris")["spec"]["serving"]["replicas"] == 2,
        timeout=120,
        what="self-heal to put iris's replicas back to git's 2",
    )
    wait_synced(gitops, "Synced after the self-heal")
    # The operator wrote every model's scrape job into its scrape config file and a dashboard
    # beside each model that asks for one: objects git does not hold, which the Applications
    # neither track nor prune (both are Synced, with automated pruning), while prometheus.yml,
    # which git does hold, stays as git has it.
    for name in MODELS:
        assert has_scrape_job(gitops, name), name
        assert has_dashboard(gitops, name) == (name in with_dashboards(gitops)), name
    tracked = [
        (app, resource)
        for app in ("modelops-platform", "modelops-models")
        for resource in gitops.app(app)["status"]["resources"]
        if resource["kind"] == "ConfigMap"
    ]
    assert [
        (app, resource["name"], resource["status"])
        for app, resource in tracked
        if resource["name"] == "prometheus-config"
    ] == [("modelops-platform", "prometheus-config", "Synced")]
    written = {name for _, name in registration.scrape_config_maps(SETTINGS)} | {
        constants.DASHBOARD_NAME.format(name=name) for name in MODELS
    }
    assert not [resource for _, resource in tracked if resource["name"] in written], tracked


def test_deleting_a_models_file_prunes_it_with_its_scrape_job_and_dashboard(
    gitops: GitOps,
) -> None:
    assert has_scrape_job(gitops, "wine")
    assert has_dashboard(gitops, "wine")
    gitops.git.commit("wine: retired", {"deploy/samples/wine.yaml": None})
    wait_for(gitops, lambda: "wine" not in gitops.model_names(), "wine pruned")
    # The scrape job by the operator's finalizer, the dashboard (owned by wine) by garbage
    # collection.
    wait_until(
        lambda: not has_scrape_job(gitops, "wine") and dashboard(gitops, "wine") is None,
        timeout=120,
        what="wine's scrape job and dashboard removed",
    )
    wait_synced(gitops, "Synced and Healthy without wine")
    assert gitops.model_names() == ["diabetes", "iris"]


def with_dashboards(gitops: GitOps) -> list[str]:
    """The models whose file in git leaves their Grafana dashboard on (diabetes turns it off)."""
    return [
        name
        for name in MODELS
        if yaml.safe_load(gitops.git.read(f"deploy/samples/{name}.yaml"))["spec"]
        .get("monitoring", {})
        .get("grafana", {})
        .get("enabled", True)
    ]


def configmap(gitops: GitOps, namespace: str, name: str) -> dict[str, Any] | None:
    found = gitops.kubectl("-n", namespace, "get", "configmap", name, "-o", "json", check=False)
    if found.returncode != 0:
        assert "NotFound" in found.stderr, found.stderr
        return None
    loaded: dict[str, Any] = json.loads(found.stdout)
    return loaded


def has_scrape_job(gitops: GitOps, model: str) -> bool:
    """The model's job is in the scrape config file that holds it."""
    # The placement key the operator keeps beside the files (made on its first need of it).
    kept = configmap(gitops, *registration.placement_config_map(SETTINGS)) or {}
    key = (kept.get("data") or {}).get(registration.PLACEMENT_KEY)
    if key is None:
        return False
    keyed = SETTINGS.model_copy(update={"scrape_placement_key": key})
    namespace, name = registration.scrape_config_map(keyed, MODELS_NAMESPACE, model)
    data = (configmap(gitops, namespace, name) or {}).get("data") or {}
    config = yaml.safe_load(data.get(registration.scrape_file_key(name)) or "") or {}
    jobs = [job["job_name"] for job in config.get("scrape_configs") or []]
    return scrape_job_name(MODELS_NAMESPACE, model) in jobs


def dashboard(gitops: GitOps, model: str) -> dict[str, Any] | None:
    """The model's dashboard ConfigMap, beside it."""
    return configmap(gitops, MODELS_NAMESPACE, constants.DASHBOARD_NAME.format(name=model))


def has_dashboard(gitops: GitOps, model: str) -> bool:
    found = dashboard(gitops, model)
    return found is not None and dashboard_key(MODELS_NAMESPACE, model) in (found.get("data") or {})
