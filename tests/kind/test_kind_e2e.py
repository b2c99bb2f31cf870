"""The main job on a real node: the samples train in Job pods of the trainer image and serve from
the server image (restricted security context, read-only root filesystem, the PVC), answer
through their Service, are found by the in-cluster Prometheus through pod discovery (their scrape
jobs loaded from the operator's scrape config files, projected into its pod), retrain and roll out
under load without a failed request, roll back by pin, and leave nothing behind."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_cluster import (
    get_json,
    load_generator,
    predict_script,
    run_python,
    server_pods,
)
from modelops_envtest.browser import chromium
from modelops_envtest.kind import KindCluster
from modelops_envtest.waiting import wait_until
from modelops_operator import constants, registration
from modelops_operator.monitoring import metrics
from modelops_operator.monitoring.grafana import dashboard_key, dashboard_queries
from modelops_operator.monitoring.prometheus import scrape_job_name
from modelops_operator.settings import Settings
from promql import concrete
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1800)]

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLES = ("iris", "wine", "diabetes")
ROLLBACK_SAMPLE = REPOSITORY / "deploy" / "samples" / "rollback" / "iris-rolled-back.yaml"
PLATFORM = "modelops-system"
READY_TIMEOUT = 600
# A ConfigMap the operator creates after Prometheus started: the kubelet adds it to the projected
# volume at its next sync of the pod (a minute or so, plus jitter), then Prometheus re-reads its
# configuration within 10 s.
PROJECTION_TIMEOUT = 300
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 4.1, 1.0], [6.9, 3.1, 5.4, 2.1]]


def status(cluster: KindCluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "-n", namespace, "mdep", name).get("status") or {}


def wait_ready(cluster: KindCluster, namespace: str, name: str, version: str | None = None) -> None:
    """Ready for the current generation (and serving `version`, when given)."""

    def ready() -> bool:
        model = get_json(cluster, "-n", namespace, "mdep", name)
        observed = model.get("status") or {}
        assert observed.get("phase") != "Failed", observed.get("message")
        return (
            observed.get("phase") == "Ready"
            and observed.get("observedGeneration") == model["metadata"]["generation"]
            and (version is None or observed["model"]["version"] == version)
        )

    wait_until(ready, timeout=READY_TIMEOUT, what=f"{name} Ready")


def scrape_jobs(cluster: KindCluster, namespace: str, name: str) -> list[str]:
    """The jobs in the scrape config file that holds the model's job, as the operator in the
    cluster is configured (MODELOPS_SCRAPE_CONFIGS)."""
    deployment = get_json(cluster, "-n", PLATFORM, "deployment", "modelops-operator")
    [operator] = [
        container
        for container in deployment["spec"]["template"]["spec"]["containers"]
        if container["name"] == "operator"
    ]
    configured = {item["name"]: item.get("value", "") for item in operator.get("env", [])}
    settings = Settings(scrape_configs=configured["MODELOPS_SCRAPE_CONFIGS"])
    # The placement key the operator keeps beside the files (made on its first need of it).
    key_namespace, key_name = registration.placement_config_map(settings)
    kept = cluster.kubectl(
        "-n", key_namespace, "get", "configmap", key_name, "-o", "json", check=False
    )
    if kept.returncode != 0:
        assert "NotFound" in kept.stderr, kept.stderr
        return []
    key = json.loads(kept.stdout)["data"][registration.PLACEMENT_KEY]
    settings = settings.model_copy(update={"scrape_placement_key": key})
    cm_namespace, cm_name = registration.scrape_config_map(settings, namespace, name)
    found = cluster.kubectl(
        "-n", cm_namespace, "get", "configmap", cm_name, "-o", "json", check=False
    )
    if found.returncode != 0:
        assert "NotFound" in found.stderr, found.stderr
        return []
    text = (json.loads(found.stdout).get("data") or {}).get(registration.scrape_file_key(cm_name))
    config = yaml.safe_load(text or "") or {}
    return [job["job_name"] for job in config.get("scrape_configs") or []]


def rolled_back() -> dict[str, Any]:
    return dict(yaml.safe_load(ROLLBACK_SAMPLE.read_text()))


def service_url(namespace: str, name: str, path: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:8080{path}"


@pytest.fixture(scope="module")
def namespace(cluster: KindCluster) -> str:
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def samples(cluster: KindCluster, namespace: str) -> dict[str, float]:
    """The three samples applied as a user would, each Ready; seconds from apply to Ready."""
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "apply", "-f", str(REPOSITORY / "deploy" / "samples"))
    seconds = {}
    for name in SAMPLES:
        wait_ready(cluster, namespace, name)
        seconds[name] = time.monotonic() - started
    print(f"apply to Ready on the kind node: {seconds}")
    return seconds


@pytest.mark.usefixtures("samples")
def test_samples_train_in_job_pods_and_serve_from_the_images(
    cluster: KindCluster, namespace: str
) -> None:
    for name in SAMPLES:
        observed = status(cluster, namespace, name)
        job = get_json(cluster, "-n", namespace, "job", observed["training"]["jobName"])
        assert job["status"].get("succeeded") == 1
        (trainer,) = get_json(
            cluster, "-n", namespace, "pods", "-l", f"job-name={job['metadata']['name']}"
        )["items"]
        terminated = trainer["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0
        # The trainer's summary, read back by the operator, is what status reports.
        summary = json.loads(terminated["message"])
        assert summary["sha256"] == observed["model"]["sha256"]
        assert summary["compiledSha256"] == observed["model"]["compiledSha256"]

        servers = server_pods(cluster, namespace, name)
        running = [pod for pod in servers if pod["status"]["phase"] == "Running"]
        assert len(running) == observed["readyReplicas"] >= 1
        for pod in running:
            # Every sample is compiled: served from model.npz, with no unpickling.
            log = cluster.kubectl("-n", namespace, "logs", pod["metadata"]["name"]).stdout
            assert "(model.npz, not unpickled); runtime compiled" in log
        for pod in [trainer, *running]:
            (container,) = pod["spec"]["containers"]
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["runAsNonRoot"] is True and security["capabilities"]["drop"] == ["ALL"]
            claim = pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
            assert claim == f"{name}-models"
        assert {pod["spec"]["containers"][0]["image"] for pod in running} == {
            "modelops/inference-server:0.1.0"
        }
        assert trainer["spec"]["containers"][0]["image"] == "modelops/trainer:0.1.0"
        pvc = get_json(cluster, "-n", namespace, "pvc", f"{name}-models")
        assert pvc["status"]["phase"] == "Bound"
    assert "Ready" in cluster.kubectl("-n", namespace, "get", "modeldeployments").stdout


@pytest.mark.usefixtures("samples")
def test_a_pod_in_the_cluster_predicts_through_the_service(
    cluster: KindCluster, namespace: str
) -> None:
    answer = json.loads(
        run_python(
            cluster,
            namespace,
            predict_script(service_url(namespace, "iris", "/predict"), IRIS_ROWS),
        )
    )
    assert answer["predictions"] == ["setosa", "versicolor", "virginica"]
    assert answer["model_version"] == status(cluster, namespace, "iris")["model"]["version"]


GRPC_SCRIPT = """
    import grpc, json
    from modelops_server.grpc_api import inference_pb2 as pb, inference_pb2_grpc as pb_grpc
    rows = {rows!r}
    request = pb.ModelInferRequest(model_name="iris")
    given = request.inputs.add(name="input-0", datatype="FP64", shape=[len(rows), 4])
    given.contents.fp64_contents.extend(value for row in rows for value in row)
    with grpc.insecure_channel({address!r}) as channel:
        answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    labels = [label.decode() for label in answer.outputs[0].contents.bytes_contents]
    print(json.dumps({{"version": answer.model_version, "labels": labels}}))
"""


@pytest.mark.usefixtures("samples")
def test_a_pod_in_the_cluster_infers_over_grpc_at_the_status_grpc_endpoint(
    cluster: KindCluster, namespace: str
) -> None:
    observed = status(cluster, namespace, "iris")
    script = GRPC_SCRIPT.format(rows=IRIS_ROWS, address=observed["grpcEndpoint"])

    answer = json.loads(run_python(cluster, namespace, script))

    assert answer == {
        "version": observed["model"]["version"],
        "labels": ["setosa", "versicolor", "virginica"],
    }


@pytest.mark.usefixtures("samples")
def test_the_page_status_points_to_predicts_in_a_browser(
    cluster: KindCluster, namespace: str
) -> None:
    """status.page's port-forward, the model's page in Chromium, a prediction from a pod."""
    observed = status(cluster, namespace, "wine")
    assert observed["page"].startswith(f"kubectl -n {namespace} port-forward service/wine 8080")
    with cluster.port_forward(namespace, "service/wine", 8080) as port, chromium() as browser:
        metadata = _get_json(f"http://127.0.0.1:{port}/v2/models/wine")
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 60).until(
            lambda _: browser.find_element(By.ID, "content").is_displayed(),
            message="the page",
        )
        browser.find_element(By.ID, "predict").click()
        answer = WebDriverWait(browser, 60).until(
            lambda _: browser.find_element(By.ID, "answer").text, message="an answer"
        )
        # Why: the compiled forest's exact contributions, one bar per feature.
        bars = WebDriverWait(browser, 60).until(
            lambda _: browser.find_elements(By.CSS_SELECTOR, "#why-chart .contribution"),
            message="the explanation's bars",
        )
        # The versions, from the ConfigMap the operator writes and the pod mounts: the
        # kubelet brings its newest content (servingSince, set once the rollout completed)
        # within its sync period.
        version = observed["model"]["version"]
        wait_until(
            lambda: (
                (history := _history(port)).get("serving") == version
                and history.get("servingSince") is not None
            ),
            timeout=180,
            what=f"the pod's /history to say since when {version} serves",
        )
        browser.get(f"http://127.0.0.1:{port}/")
        serving = WebDriverWait(browser, 60).until(
            lambda _: browser.find_elements(By.CSS_SELECTOR, "#history tr.serving"),
            message="the serving version in the page's list",
        )
        serving_row = serving[0].text
    assert metadata["name"] == "wine"
    assert metadata["versions"] == [version]
    # The form starts at the middle of each range training saw: a wine class comes back.
    assert answer in {"class_0", "class_1", "class_2"}
    assert len(bars) == len(metadata["parameters"]["features"])
    assert serving_row.startswith(version) and "since " in serving_row


def _history(port: int) -> dict[str, Any]:
    try:
        history: dict[str, Any] = _get_json(f"http://127.0.0.1:{port}/history")
    except urllib.error.HTTPError:
        return {}
    return history


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as got:
        return json.load(got)


def _instant(port: int, promql: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": promql})
    answer = _get_json(f"http://127.0.0.1:{port}/api/v1/query?{query}")
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def send_traffic(cluster: KindCluster, namespace: str, good: int, bad: int) -> None:
    """`good` predictions (every iris class) and `bad` rejected requests, from a pod."""
    run_python(
        cluster,
        namespace,
        f"""
        import json, urllib.error, urllib.request
        def post(rows):
            request = urllib.request.Request({service_url(namespace, "iris", "/predict")!r},
                data=json.dumps({{"instances": rows}}).encode(), headers={{"Content-Type": "application/json"}})
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except urllib.error.HTTPError as error:
                return error.code
        rows = {IRIS_ROWS!r}
        assert all(post([rows[i % 3]]) == 200 for i in range({good}))
        assert all(post([["not", "numbers"]]) // 100 == 4 for _ in range({bad}))
        """,
    )


@pytest.mark.usefixtures("samples")
def test_prometheus_discovers_the_serving_pods_and_every_dashboard_query_has_data(
    cluster: KindCluster, namespace: str
) -> None:
    pods = {pod["metadata"]["name"] for pod in server_pods(cluster, namespace, "iris")}
    version = status(cluster, namespace, "iris")["model"]["version"]
    job = scrape_job_name(namespace, "iris")
    assert scrape_jobs(cluster, namespace, "iris").count(job) == 1
    with cluster.port_forward(PLATFORM, "service/prometheus", 9090) as port:

        def scrape_pools() -> list[str]:
            answer = _get_json(f"http://127.0.0.1:{port}/api/v1/scrape_pools")
            return list(answer["data"]["scrapePools"])

        # Prometheus loads the job from its scrape config file, projected into its pod.
        try:
            wait_until(
                lambda: job in scrape_pools(),
                timeout=PROJECTION_TIMEOUT,
                what=f"Prometheus to load {job} from the projected scrape config files",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\nits scrape pools: {scrape_pools()}") from error

        def every_pod_is_up() -> list[dict[str, Any]] | None:
            targets = _instant(port, f'up{{job="{job}"}} == 1')
            return targets if {t["metric"].get("pod") for t in targets} == pods else None

        targets = wait_until(every_pod_is_up, timeout=240, what=f"Prometheus to scrape {pods}")
        for target in targets:
            labels = target["metric"]
            assert (labels["namespace"], labels["model"], labels["version"]) == (
                namespace,
                "iris",
                version,
            )

        def scraped(code: str, count: int) -> None:
            sent = f'sum({metrics.REQUESTS}{{job="{job}",endpoint="/predict",code=~"{code}"}})'
            wait_until(
                lambda: (found := _instant(port, sent)) and float(found[0]["value"][1]) >= count,
                timeout=120,
                what=f"{count} requests with code {code} to be scraped",
            )

        # Two rounds, each scraped before the next: every rate() then sees its counter grow.
        for round_number in (1, 2):
            send_traffic(cluster, namespace, good=15, bad=2)
            scraped("200", 15 * round_number)
            scraped("4..", 2 * round_number)
        dashboards = get_json(
            cluster, "-n", namespace, "configmap", constants.DASHBOARD_NAME.format(name="iris")
        )
        dashboard = json.loads(dashboards["data"][dashboard_key(namespace, "iris")])
        queries = dashboard_queries(dashboard)
        empty = [query for query in queries if not _instant(port, concrete(query, "5m"))]
        assert empty == []


@pytest.fixture
def load(cluster: KindCluster, namespace: str) -> Iterator[Any]:
    """modelops-load against the iris Service, two users back to back, until `stop()`, which
    returns its report."""
    # Kept-alive connections, as most clients keep them: a leaving pod's drain closes each
    # after its next answer (modelops-drain, its preStop hook).
    url = service_url(namespace, "iris", "")
    with load_generator(cluster, namespace, url, "--users 2 --duration 900") as stop:
        yield stop


def only_version_running(cluster: KindCluster, namespace: str, name: str, version: str) -> bool:
    """Every serving pod, terminating ones included, is of `version`: the rollout is over."""
    pods = server_pods(cluster, namespace, name)
    return bool(pods) and all(
        pod["metadata"]["labels"].get("modelops.dev/version") == version for pod in pods
    )


@pytest.mark.usefixtures("samples")
def test_retraining_rolls_out_under_load_without_a_failed_request(
    cluster: KindCluster, namespace: str, load: Any
) -> None:
    before = status(cluster, namespace, "iris")["model"]["version"]
    # The rollback sample's training spec, which the next test pins back from.
    hyperparameters = rolled_back()["spec"]["training"]["hyperparameters"]
    patch = {"spec": {"training": {"hyperparameters": hyperparameters}}}
    cluster.kubectl(
        "-n", namespace, "patch", "mdep", "iris", "--type=merge", "-p", json.dumps(patch)
    )
    wait_until(
        lambda: status(cluster, namespace, "iris")["model"]["version"] != before,
        timeout=READY_TIMEOUT,
        what="the retrained model to be promoted",
    )
    after = status(cluster, namespace, "iris")["model"]["version"]
    wait_ready(cluster, namespace, "iris", after)
    wait_until(
        lambda: only_version_running(cluster, namespace, "iris", after),
        timeout=120,
        what="the old serving pods to be gone",
    )

    result = load()

    print(
        f"rollout under load: {result['requests']} requests, {result['failures']} failed, "
        f"{result['rps']} req/s, p99 {result['p99_ms']} ms"
    )
    assert result["failures"] == 0, result["errors"]
    assert set(result["versions"]) == {before, after}, result["versions"]
    assert result["requests"] > 100


@pytest.mark.usefixtures("samples")
def test_a_pod_of_another_namespace_can_predict_but_not_drain_a_model(
    cluster: KindCluster, namespace: str
) -> None:
    """The drain is the serving pod's own preStop hook's: asked over the network, from a pod
    anywhere, it is refused (it would make the model close every connection)."""
    outsider = f"outsider-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", outsider)
    drain_url = service_url(namespace, "iris", "/drain?seconds=0")
    script = f"""
        import urllib.error, urllib.request
        try:
            urllib.request.urlopen({drain_url!r}, timeout=10)
            print("drained")
        except urllib.error.HTTPError as error:
            print(error.code, error.read().decode())
    """
    try:
        refused = run_python(cluster, outsider, script)
        assert refused.startswith("403") and "preStop hook" in refused, refused
        url = service_url(namespace, "iris", "/predict")
        answer = json.loads(run_python(cluster, outsider, predict_script(url, IRIS_ROWS[:1])))
        assert answer["predictions"] == ["setosa"]
    finally:
        cluster.kubectl("delete", "namespace", outsider, "--wait=false")


@pytest.mark.usefixtures("samples")
def test_the_rollback_sample_pins_the_earlier_version_without_a_job(
    cluster: KindCluster, namespace: str
) -> None:
    """deploy/samples/rollback applied as its comment says, over the retrained iris sample."""
    observed = status(cluster, namespace, "iris")
    history = [entry["version"] for entry in observed["history"]]
    assert len(history) >= 2, "the retraining test promotes a second version"
    earlier = history[1]
    assert rolled_back()["spec"]["serving"]["modelVersion"] == earlier, "iris.yaml's version"
    jobs = get_json(cluster, "-n", namespace, "jobs", "-l", "modelops.dev/model=iris")["items"]

    cluster.kubectl("-n", namespace, "apply", "-f", str(ROLLBACK_SAMPLE))
    wait_ready(cluster, namespace, "iris", earlier)
    wait_until(
        lambda: only_version_running(cluster, namespace, "iris", earlier),
        timeout=120,
        what="the pinned version's pods only",
    )

    after = get_json(cluster, "-n", namespace, "jobs", "-l", "modelops.dev/model=iris")["items"]
    assert [job["metadata"]["name"] for job in after] == [job["metadata"]["name"] for job in jobs]
    answer = json.loads(
        run_python(
            cluster,
            namespace,
            predict_script(service_url(namespace, "iris", "/predict"), IRIS_ROWS[:1]),
        )
    )
    assert answer["model_version"] == earlier


def test_a_serving_pod_that_cannot_start_shows_in_status_within_a_minute(
    cluster: KindCluster, namespace: str
) -> None:
    manifest = yaml.safe_load((REPOSITORY / "deploy" / "samples" / "iris.yaml").read_text())
    manifest["metadata"] = {"name": "broken", "namespace": namespace}
    # An allowed repository (the operator's own), a tag no node has.
    manifest["spec"]["serving"] = {"replicas": 1, "image": "modelops/inference-server:no-such-tag"}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    wait_until(
        lambda: get_json(
            cluster, "-n", namespace, "deployments", "-l", "modelops.dev/model=broken"
        )["items"],
        timeout=READY_TIMEOUT,
        what="training to finish and the serving Deployment to be made",
    )
    created = time.monotonic()
    wait_until(
        lambda: status(cluster, namespace, "broken").get("phase") == "Failed",
        timeout=60,
        what="status to tell that the serving pod cannot start",
    )
    seconds = time.monotonic() - created
    message = status(cluster, namespace, "broken")["message"]
    assert "ErrImageNeverPull" in message and "modelops/inference-server:no-such-tag" in message, (
        message
    )
    print(f"a serving pod that cannot start shows in status after {seconds:.0f}s: {message}")
    cluster.kubectl("-n", namespace, "delete", "mdep", "broken")


@pytest.mark.usefixtures("samples")
def test_deleting_the_models_leaves_nothing_behind(cluster: KindCluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "delete", "mdep", "--all", "--timeout=120s")

    def nothing_left() -> bool:
        left = get_json(
            cluster,
            "-n",
            namespace,
            "pods,pvc,jobs,deployments,services,configmaps",
            "-l",
            "app.kubernetes.io/managed-by=modelops",
        )
        return left["items"] == []

    wait_until(
        nothing_left,
        timeout=180,
        what="the models' pods, claims, Jobs, Services and dashboards to go",
    )
    for name in SAMPLES:
        assert scrape_job_name(namespace, name) not in scrape_jobs(cluster, namespace, name)


def test_a_claim_that_cannot_mount_shows_in_status_in_the_kubelets_words(
    cluster: KindCluster, namespace: str
) -> None:
    """A claim bound to a volume the kubelet cannot mount (a local path the node lacks): the
    training pod is scheduled and never starts, and only its Events say why."""
    [node, *_] = cluster.workers()
    volume = f"unmountable-{namespace}"
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": "unmountable"},
                "local": {"path": "/nonexistent/modelops"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "unmountable", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    model = yaml.safe_load((REPOSITORY / "deploy" / "samples" / "iris.yaml").read_text())
    model["metadata"] = {"name": "unmountable", "namespace": namespace}
    model["spec"]["serving"] = {"replicas": 1}
    model["spec"]["storage"] = {"existingClaim": "unmountable"}
    for manifest in [*objects, model]:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    try:

        def told() -> str | None:
            message = str(status(cluster, namespace, "unmountable").get("message", ""))
            return (
                message if "FailedMount" in message and "/nonexistent/modelops" in message else None
            )

        # A pod is given 10 s to start, then its Events are read, and again every 30 s while it
        # waits: the kubelet's first FailedMount may be the node authorizer's passing refusal of
        # the claim, which status passes over; the next names the path.
        message = wait_until(
            told, timeout=90, what="status to tell that the training pod's volume cannot mount"
        )
        stuck = next(
            condition
            for condition in status(cluster, namespace, "unmountable")["conditions"]
            if condition["type"] == "Trained"
        )
        assert stuck["reason"] == "TrainingStuck", stuck
        assert "/nonexistent/modelops" in message, message
        print(f"a claim that cannot mount shows in status: {message}")
    finally:
        cluster.kubectl("-n", namespace, "delete", "mdep", "unmountable", "--wait=false")
        cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)
