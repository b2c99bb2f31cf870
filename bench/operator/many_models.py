"""Benchmark: 1,000 ModelDeployments created at once against the test control plane, with their
Prometheus scrape jobs and Grafana dashboards registered and checked.

    uv run --locked python bench/operator/many_models.py [--count 1000] [--json]
        [--idle-seconds 120] [--profile PATH] [--kubernetes-defaults]

The operator runs with production's resync and sweep intervals (60 s and 300 s), as a
ServiceAccount bound to cluster-admin, as in a cluster. The controller-manager runs with the
client limits of Kubernetes' own scalability tests (--kube-api-qps=100 --kube-api-burst=100);
--kubernetes-defaults leaves its defaults (20 and 30), which throttle its Job, Deployment and
ReplicaSet controllers, not the operator. Its persistent-volume binder is off in both: with no
storage provisioner here it would post a FailedBinding Event for every claim every 15 s. The
models are applied in one server-side `kubectl apply` (1,000 objects without an operator:
client-side apply 19.9 s, a GET and a POST each; server-side 9.8 s, one PATCH each; create
8.8 s: server-side is nearly as fast as create and is still an apply, as GitOps does). Then
the kubelet stand-in finishes every training pod with the real trainer's summary and readies
every serving pod.

Measured: the time until every model has its training Job (as a watch of the Jobs delivers
them: listing a thousand Jobs every second would load the apiserver being measured) and, once
the training pods reported, until all are Ready; the operator's peak memory (VmHWM); every
model's scrape job (in the ConfigMaps `registration.scrape_config_maps` names) and dashboard
ConfigMap; the largest shared ConfigMap against the 1 MiB limit; the Warning Events, and of
them the operator's (by their reportingComponent); the apiserver's requests from just before
the apply until all are Ready (its own `apiserver_request_total`); then, idle for
--idle-seconds, the operator's CPU and the requests per model and minute.

Requests are everyone's: kubectl, this script and its kubelet stand-in, the controller-manager
and the operator. This script counts its own (and kubectl's, from its -v=6 log) and subtracts
them for `apiserver_requests_operator_estimate`, which still holds the controller-manager's. The
operator's own count comes from the apiserver's flow-control metrics: of all clients only the
operator is a ServiceAccount, whose requests fall in the default `service-accounts` FlowSchema.

--profile PATH records the operator with py-spy (50 samples a second, idle threads left out)
from just before the apply until all are Ready, in py-spy's raw format (collapsed stacks, one
line per stack and its sample count): speedscope.app and flamegraph.pl open it as it is, and the
25 functions with the most samples of their own are computed from it here. py-spy takes a thread
waiting in an SSL read or on a lock for a busy one, and pauses the operator for every sample:
compare the times of profiled runs only with each other.

Not a test: run it on request and compare runs; --json prints one JSON line of the numbers.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess, install_prerequisites
from modelops_envtest.waiting import wait_until
from modelops_operator import constants, registration
from modelops_operator.settings import Settings
from modelops_trainer import train

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench"
SYSTEM_NAMESPACE = "modelops-system"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=modelops"
DASHBOARD_SELECTOR = "grafana_dashboard=1"
# Production's defaults, not the test suite's 5 s.
OPERATOR_ENV = {"MODELOPS_RESYNC_SECONDS": "60", "MODELOPS_SWEEP_SECONDS": "300"}
OPERATOR_ACCOUNT = "modelops-operator"
OPERATOR_FLOW_SCHEMA = "service-accounts"
# Prometheus's own configuration, the user's: it names the scrape ConfigMaps' files.
USER_PROMETHEUS_CONFIG = (SYSTEM_NAMESPACE, "prometheus-config")
APPLY = ("apply", "--server-side", "-v=6", "-f", "-")
# The controller-manager's client limits of Kubernetes' own scalability tests (5,000 nodes):
# at its defaults (20 requests a second for each controller) the Job, Deployment and ReplicaSet
# controllers' own requests, not the operator, set the pace: 1,000 serving pods take minutes.
# --kubernetes-defaults runs without them.
CONTROLLER_MANAGER_FLAGS = ("--kube-api-qps=100", "--kube-api-burst=100")
# The test control plane has no storage provisioner, so the persistent-volume binder would post
# a FailedBinding Event for every model's claim every 15 s (4 requests per model and minute,
# ~65 a second at a thousand models), load that no cluster with a provisioner carries.
NO_PROVISIONER_FLAGS = ("--controllers=*,-persistentvolume-binder-controller",)
TIMEOUT_SECONDS = 900.0
# Every poll lists up to `count` objects: once a second leaves the two cores to the operator.
POLL_SECONDS = 1.0
MARKING_THREADS = 8
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
PROFILE_RATE = 50
TOP_FUNCTIONS = 25
TOP_REQUESTS = 15
SHOWN_WARNINGS = 10
SHOWN_NOT_READY = 10

RequestKind = tuple[str, str, str]  # verb, resource, subresource


@dataclasses.dataclass
class Results:
    """The numbers of a run: the JSON line's keys, in order."""

    count: int
    ready: int = 0
    seconds_to_apply: float | None = None
    seconds_to_all_jobs: float | None = None
    seconds_marking_training_pods: float | None = None
    seconds_to_all_ready: float | None = None
    operator_peak_rss_mib: float | None = None
    bench_cpu_seconds: float | None = None
    scrape_jobs_registered: int = 0
    dashboards_registered: int = 0
    largest_shared_object: str = ""
    largest_shared_object_bytes: int = 0
    largest_shared_object_percent_of_limit: float = 0.0
    warning_events: int = 0
    warning_events_operator: int = 0
    apiserver_requests: int = 0
    apiserver_requests_per_model: float = 0.0
    apiserver_requests_bench: int = 0
    apiserver_requests_operator_estimate: int = 0
    apiserver_requests_operator: int | None = None
    apiserver_requests_operator_per_model: float | None = None
    idle_seconds: float = 0.0
    idle_cpu_percent: float | None = None
    idle_requests_per_model_per_minute: float | None = None
    idle_operator_requests_per_model_per_minute: float | None = None


@dataclasses.dataclass
class Details:
    """What the human report shows beyond the numbers (stderr with --json)."""

    top_requests: list[tuple[RequestKind, int]] = dataclasses.field(default_factory=list)
    idle_top_requests: list[tuple[RequestKind, int]] = dataclasses.field(default_factory=list)
    # (who posted it, the Event)
    warnings: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    not_ready: list[str] = dataclasses.field(default_factory=list)
    hot_functions: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    profile_samples: int = 0


@dataclasses.dataclass
class RequestCounts:
    """Requests the apiserver served between two readings: all, this script's, the operator's
    (None where the apiserver has no such FlowSchema)."""

    total: int
    bench: int
    operator: int | None


@dataclasses.dataclass
class ApiserverRequests:
    """A reading of the apiserver's request counters, and this script's own count before it."""

    by_kind: collections.Counter[RequestKind]
    by_flow_schema: collections.Counter[str]
    bench_before: int


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the benchmark's own requests -----------------------------------------------------------


class OwnRequests:
    """How many requests this script (and kubectl on its behalf) sent."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, requests: int = 1) -> None:
        with self._lock:
            self.count += requests


class CountingRestClient(kubernetes.client.rest.RESTClientObject):
    def __init__(self, configuration: kubernetes.client.Configuration, own: OwnRequests) -> None:
        super().__init__(configuration)
        self.own = own

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.own.add()
        return super().request(*args, **kwargs)


def bench_client(kubeconfig: Path, own: OwnRequests) -> kubernetes.client.ApiClient:
    """The admin's client, counting its requests, with a connection per marking thread."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = MARKING_THREADS * 2
    client = kubernetes.client.ApiClient(configuration)
    client.rest_client = CountingRestClient(configuration, own)
    return client


def kubectl_requests(log: str) -> int:
    """Requests kubectl sent, from its -v=6 log (one "Response" line each)."""
    return sum(1 for line in log.splitlines() if '"Response" verb=' in line)


def get(client: kubernetes.client.ApiClient, path: str, **query: str) -> bytes | None:
    """GET a path of the apiserver as bytes; None where it is not found. Lists of a thousand
    objects are parsed as JSON here: the typed client's models would take seconds of CPU."""
    url = client.configuration.host + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    response = client.call_api("GET", url)
    data = response.read()
    if response.status == 404:
        return None
    if not 200 <= response.status < 300:
        raise RuntimeError(f"GET {path}: {response.status} {data[:300]!r}")
    return bytes(data)


def get_json(client: kubernetes.client.ApiClient, path: str, **query: str) -> Any:
    data = get(client, path, **query)
    return None if data is None else json.loads(data)


# -- setup ------------------------------------------------------------------------------------


def operator_kubeconfig(plane: ControlPlane) -> Path:
    """A kubeconfig of the ServiceAccount the operator runs as (bound to cluster-admin)."""
    account = f"{SYSTEM_NAMESPACE}:{OPERATOR_ACCOUNT}"
    plane.kubectl("create", "serviceaccount", OPERATOR_ACCOUNT, "-n", SYSTEM_NAMESPACE)
    plane.kubectl(
        "create",
        "clusterrolebinding",
        OPERATOR_ACCOUNT,
        "--clusterrole=cluster-admin",
        f"--serviceaccount={account}",
    )
    token = plane.kubectl(
        "create", "token", OPERATOR_ACCOUNT, "-n", SYSTEM_NAMESPACE, "--duration=24h"
    ).stdout.strip()
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["users"] = [{"name": OPERATOR_ACCOUNT, "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = OPERATOR_ACCOUNT
    path = plane.workdir / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def model_names(count: int) -> list[str]:
    return [f"iris-{index:03d}" for index in range(count)]


def manifests(iris: dict[str, Any], count: int) -> str:
    """`count` copies of the iris sample with one serving replica each, as one List."""
    spec = iris["spec"] | {"serving": iris["spec"]["serving"] | {"replicas": 1}}
    items = [
        iris | {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
        for name in model_names(count)
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


# -- waiting ----------------------------------------------------------------------------------


def wait_paced(condition: Callable[[], bool], what: str) -> bool:
    """Whether `condition` held within TIMEOUT_SECONDS, asked about once every POLL_SECONDS."""

    def paced() -> bool:
        if condition():
            return True
        time.sleep(max(0.0, POLL_SECONDS - 0.25))  # wait_until pauses a quarter second itself
        return False

    try:
        wait_until(paced, timeout=TIMEOUT_SECONDS, what=what)
        return True
    except AssertionError as timed_out:
        note(str(timed_out))
        return False


JOBS_PATH = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"


def job_names(client: kubernetes.client.ApiClient) -> list[str]:
    listed = get_json(client, JOBS_PATH, labelSelector=MANAGED_SELECTOR)
    return [job["metadata"]["name"] for job in listed["items"]]


class JobArrivals:
    """When the last of `count` training Jobs was made, as a watch delivers them. Asking by
    listing would be the benchmark's own load on the apiserver it measures: a list of a
    thousand Jobs (about 5 MB of JSON) every second while the operator makes them."""

    def __init__(self, client: kubernetes.client.ApiClient, count: int) -> None:
        self._client, self._count = client, count
        self._names: set[str] = set()
        self._all_at: float | None = None
        self._done = threading.Event()
        # From what is there now, so that every Job made after this is an event of the watch.
        listed = get_json(client, JOBS_PATH, labelSelector=MANAGED_SELECTOR)
        self._names.update(job["metadata"]["name"] for job in listed["items"])
        self._version = listed["metadata"]["resourceVersion"]
        threading.Thread(target=self._watch, name="job-arrivals", daemon=True).start()

    def wait(self, timeout: float) -> float | None:
        """The monotonic time all had arrived, or None if they did not within `timeout`."""
        self._done.wait(timeout)
        return self._all_at

    def _watch(self) -> None:
        try:
            self._all_at = self._follow()
        except Exception as error:
            note(f"watching the Jobs failed: {error}")
        finally:
            self._done.set()

    def _follow(self) -> float | None:
        # The apiserver ends a watch after a while: start again where it ended.
        while len(self._names) < self._count:
            query = urllib.parse.urlencode(
                {
                    "watch": "1",
                    "labelSelector": MANAGED_SELECTOR,
                    "resourceVersion": self._version,
                    "timeoutSeconds": str(int(TIMEOUT_SECONDS)),
                }
            )
            url = f"{self._client.configuration.host}{JOBS_PATH}?{query}"
            for line in self._client.call_api("GET", url).response:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(event["object"].get("message"))
                self._version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] == "ADDED":
                    self._names.add(event["object"]["metadata"]["name"])
                    if len(self._names) >= self._count:
                        break
        return time.monotonic()


def not_ready(client: kubernetes.client.ApiClient) -> list[str]:
    """Each model not Ready, with its phase and message."""
    listed = get_json(
        client, f"/apis/modelops.dev/v1alpha1/namespaces/{NAMESPACE}/modeldeployments"
    )
    statuses = {model["metadata"]["name"]: model.get("status") or {} for model in listed["items"]}
    return [
        f"{name} {status.get('phase')}: {status.get('message')}"
        for name, status in statuses.items()
        if status.get("phase") != "Ready"
    ]


def finish_training(kubelet: Kubelet, jobs: list[str], summary: dict[str, Any]) -> None:
    """Every training pod succeeds with the real trainer's summary; a few at a time, each is a
    list and a status patch."""
    with ThreadPoolExecutor(MARKING_THREADS) as pool:
        list(pool.map(lambda job: kubelet.finish_training(NAMESPACE, job, summary), jobs))


# -- the apiserver's own counters -------------------------------------------------------------

_SERIES = re.compile(
    r"^(apiserver_request_total|apiserver_flowcontrol_dispatched_requests_total)\{(.*)\} (\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def read_requests(client: kubernetes.client.ApiClient, own: OwnRequests) -> ApiserverRequests:
    """apiserver_request_total by (verb, resource, subresource), summed over its other labels,
    and the requests dispatched by FlowSchema, from the apiserver's /metrics."""
    reading = ApiserverRequests(collections.Counter(), collections.Counter(), own.count)
    text = (get(client, "/metrics") or b"").decode()
    for line in text.splitlines():
        matched = _SERIES.match(line)
        if not matched:
            continue
        metric, labels_text, value = matched.groups()
        labels = dict(_LABEL.findall(labels_text))
        if metric == "apiserver_request_total":
            kind = (labels.get("verb", ""), labels.get("resource", ""), labels["subresource"])
            reading.by_kind[kind] += int(float(value))
        else:
            reading.by_flow_schema[labels.get("flow_schema", "")] += int(float(value))
    return reading


def requests_between(before: ApiserverRequests, after: ApiserverRequests) -> RequestCounts:
    operator = None
    if OPERATOR_FLOW_SCHEMA in after.by_flow_schema:
        schema = OPERATOR_FLOW_SCHEMA
        operator = after.by_flow_schema[schema] - before.by_flow_schema[schema]
    return RequestCounts(
        total=sum((after.by_kind - before.by_kind).values()),
        bench=after.bench_before - before.bench_before,
        operator=operator,
    )


# -- registration -----------------------------------------------------------------------------


def data_bytes(configmap: dict[str, Any]) -> int:
    data: dict[str, str] = configmap.get("data") or {}
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def read_configmap(
    client: kubernetes.client.ApiClient, namespace: str, name: str
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = get_json(
        client, f"/api/v1/namespaces/{namespace}/configmaps/{name}"
    )
    return found


def check_scrape_jobs(
    client: kubernetes.client.ApiClient, models: list[str], results: Results
) -> None:
    """Count the models whose scrape job is in a scrape ConfigMap, and find the largest shared
    ConfigMap (the scrape ones and the user's prometheus-config)."""
    settings = Settings()
    jobs: set[str] = set()
    shared = [*registration.scrape_config_maps(settings), USER_PROMETHEUS_CONFIG]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for namespace, name in shared:
        configmap = read_configmap(client, namespace, name)
        if configmap is None:
            continue
        size = data_bytes(configmap)
        if size > results.largest_shared_object_bytes:
            results.largest_shared_object = f"{namespace}/{name}"
            results.largest_shared_object_bytes = size
        text = (configmap.get("data") or {}).get(registration.scrape_file_key(name))
        config = yaml.load(text, Loader=loader) if text else None
        jobs.update(job["job_name"] for job in (config or {}).get("scrape_configs") or [])
    results.scrape_jobs_registered = sum(
        1 for model in models if f"modelops/{NAMESPACE}/{model}" in jobs
    )
    results.largest_shared_object_percent_of_limit = (
        100 * results.largest_shared_object_bytes / CONFIGMAP_LIMIT_BYTES
    )


def check_dashboards(
    client: kubernetes.client.ApiClient, models: list[str], results: Results
) -> None:
    listed = get_json(
        client, f"/api/v1/namespaces/{NAMESPACE}/configmaps", labelSelector=DASHBOARD_SELECTOR
    )
    names = {configmap["metadata"]["name"] for configmap in listed["items"]}
    results.dashboards_registered = sum(1 for model in models if f"{model}-dashboard" in names)


def warning_events(client: kubernetes.client.ApiClient) -> list[tuple[str, str]]:
    listed = get_json(client, "/api/v1/events")
    return [
        (
            event.get("reportingComponent") or (event.get("source") or {}).get("component", ""),
            f"{event['metadata']['namespace']} {event['involvedObject'].get('kind')}/"
            f"{event['involvedObject'].get('name')} {event.get('reason')} "
            f"(x{event.get('count') or 1}): {event.get('message')}",
        )
        for event in listed["items"]
        if event.get("type") == "Warning"
    ]


# -- the operator process ---------------------------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def py_spy_binary() -> str:
    beside_python = Path(sys.executable).parent / "py-spy"
    found = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: run `uv sync` (it is in the dev group)")
    return found


@contextlib.contextmanager
def profiling(pid: int, path: Path | None) -> Iterator[None]:
    """py-spy records the process while the block runs (nothing without a path)."""
    if path is None:
        yield
        return
    command = [py_spy_binary(), "record", "--pid", str(pid), "--rate", str(PROFILE_RATE)]
    recorder = subprocess.Popen(
        [*command, "--format", "raw", "-o", str(path)], stdout=sys.stderr, stderr=sys.stderr
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=120)


def hot_functions(path: Path) -> tuple[list[tuple[str, int]], int]:
    """The functions with the most samples of their own (leaf frames, line numbers dropped)
    in a raw py-spy profile, and the number of samples."""
    own: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            leaf = stack.rsplit(";", 1)[-1]
            own[re.sub(r":\d+\)$", ")", leaf)] += int(samples)
    return own.most_common(TOP_FUNCTIONS), sum(own.values())


# -- the run ----------------------------------------------------------------------------------


# After the last model is Ready, one resync period before the idle window: the last child
# events (rollouts finishing) are still being handled then.
SETTLE_SECONDS = float(OPERATOR_ENV["MODELOPS_RESYNC_SECONDS"])


def run(
    count: int, idle_seconds: float, profile: Path | None, controller_manager_flags: Sequence[str]
) -> tuple[Results, Details]:
    results, details = Results(count=count, idle_seconds=idle_seconds), Details()
    models = model_names(count)
    own = OwnRequests()
    with ControlPlane(controller_manager_flags=controller_manager_flags) as plane:
        install_prerequisites(plane)
        for namespace in (SYSTEM_NAMESPACE, NAMESPACE):
            plane.kubectl("create", "namespace", namespace)
        kubeconfig = str(operator_kubeconfig(plane))
        operator = OperatorProcess(plane, KUBECONFIG=kubeconfig, **OPERATOR_ENV).start()
        assert operator.process is not None
        pid = operator.process.pid
        client = bench_client(plane.kubeconfig, own)
        kubelet = Kubelet(client)
        iris = yaml.safe_load((ROOT / "deploy" / "samples" / "iris.yaml").read_text())
        summary: dict[str, Any] = train(
            iris["spec"]["training"], Path(tempfile.mkdtemp()), "iris", NAMESPACE
        )

        with profiling(pid, profile):
            before = read_requests(client, own)
            arrivals = JobArrivals(client, count)
            started, bench_cpu = time.monotonic(), time.process_time()
            applied = plane.kubectl(*APPLY, stdin=manifests(iris, count))
            own.add(kubectl_requests(applied.stderr))
            results.seconds_to_apply = time.monotonic() - started
            note(f"applied {count} models in {results.seconds_to_apply:.1f} s")

            all_jobs_at = arrivals.wait(TIMEOUT_SECONDS - (time.monotonic() - started))
            if all_jobs_at is not None:
                results.seconds_to_all_jobs = all_jobs_at - started
            note(f"training Jobs after {time.monotonic() - started:.1f} s")

            marking = time.monotonic()
            finish_training(kubelet, job_names(client), summary)
            reported = time.monotonic()
            results.seconds_marking_training_pods = reported - marking
            note(f"training pods reported in {results.seconds_marking_training_pods:.1f} s")

            def all_ready() -> bool:
                kubelet.make_ready(NAMESPACE)
                return not not_ready(client)

            if wait_paced(all_ready, "all Ready"):
                results.seconds_to_all_ready = time.monotonic() - reported
            details.not_ready = not_ready(client)
            results.ready = count - len(details.not_ready)
            note(f"{results.ready} Ready after {time.monotonic() - reported:.1f} s")
            after = read_requests(client, own)
            results.bench_cpu_seconds = time.process_time() - bench_cpu

        spent = requests_between(before, after)
        details.top_requests = (after.by_kind - before.by_kind).most_common(TOP_REQUESTS)
        check_scrape_jobs(client, models, results)
        check_dashboards(client, models, results)
        details.warnings = warning_events(client)

        note(f"settling for {SETTLE_SECONDS:.0f} s, then idle for {idle_seconds:.0f} s")
        time.sleep(SETTLE_SECONDS)
        idle_before, cpu_before = read_requests(client, own), cpu_seconds(pid)
        time.sleep(idle_seconds)
        idle_after, cpu_after = read_requests(client, own), cpu_seconds(pid)
        details.idle_top_requests = (idle_after.by_kind - idle_before.by_kind).most_common(
            TOP_REQUESTS
        )
        results.operator_peak_rss_mib = peak_rss_mib(pid)
        operator.stop(kill=True)

    fill_requests(results, spent, requests_between(idle_before, idle_after))
    results.warning_events = len(details.warnings)
    results.warning_events_operator = sum(
        1 for poster, _ in details.warnings if poster == constants.COMPONENT
    )
    if idle_seconds > 0:
        results.idle_cpu_percent = 100 * (cpu_after - cpu_before) / idle_seconds
    if profile is not None:
        details.hot_functions, details.profile_samples = hot_functions(profile)
    return results, details


def fill_requests(results: Results, spent: RequestCounts, idle: RequestCounts) -> None:
    count = results.count
    results.apiserver_requests = spent.total
    results.apiserver_requests_per_model = spent.total / count
    results.apiserver_requests_bench = spent.bench
    results.apiserver_requests_operator_estimate = spent.total - spent.bench
    results.apiserver_requests_operator = spent.operator
    if spent.operator is not None:
        results.apiserver_requests_operator_per_model = spent.operator / count
    minutes = results.idle_seconds / 60
    if minutes > 0:
        results.idle_requests_per_model_per_minute = idle.total / count / minutes
        if idle.operator is not None:
            results.idle_operator_requests_per_model_per_minute = idle.operator / count / minutes


# -- reporting --------------------------------------------------------------------------------


def rounded(results: Results) -> dict[str, Any]:
    return {
        key: round(value, 1) if isinstance(value, float) else value
        for key, value in dataclasses.asdict(results).items()
    }


def number(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:9.{digits}f} {unit}".rstrip()


def table(results: Results) -> list[str]:
    r = results
    rows = [
        ("models", f"{r.count:7d}"),
        ("Ready", f"{r.ready:7d}"),
        ("server-side apply of all", number(r.seconds_to_apply, "s")),
        ("until every training Job", number(r.seconds_to_all_jobs, "s")),
        ("marking the training pods", number(r.seconds_marking_training_pods, "s")),
        ("pods reported -> all Ready", number(r.seconds_to_all_ready, "s")),
        ("operator peak memory (VmHWM)", number(r.operator_peak_rss_mib, "MiB")),
        ("this script's CPU, apply -> Ready", number(r.bench_cpu_seconds, "s")),
        ("scrape jobs registered", f"{r.scrape_jobs_registered:7d}"),
        ("dashboards registered", f"{r.dashboards_registered:7d}"),
        ("largest shared ConfigMap", r.largest_shared_object or "-"),
        ("  its data", f"{r.largest_shared_object_bytes:7d} bytes"),
        ("  of the 1 MiB limit", number(r.largest_shared_object_percent_of_limit, "%")),
        ("Warning Events", f"{r.warning_events:7d}"),
        ("  the operator's", f"{r.warning_events_operator:7d}"),
        ("apiserver requests, apply -> Ready", f"{r.apiserver_requests:7d}"),
        ("  per model", number(r.apiserver_requests_per_model)),
        ("  this script's and kubectl's", f"{r.apiserver_requests_bench:7d}"),
        ("  all but those", f"{r.apiserver_requests_operator_estimate:7d}"),
        ("  the operator's (flow control)", number(r.apiserver_requests_operator, digits=0)),
        ("  the operator's per model", number(r.apiserver_requests_operator_per_model)),
        (f"idle {r.idle_seconds:.0f} s: operator CPU", number(r.idle_cpu_percent, "% of a core")),
        ("  requests / model / minute", number(r.idle_requests_per_model_per_minute, digits=2)),
        (
            "  the operator's of them",
            number(r.idle_operator_requests_per_model_per_minute, digits=2),
        ),
    ]
    return [f"{label:36} {value}" for label, value in rows]


def request_lines(title: str, top: list[tuple[RequestKind, int]], count: int) -> list[str]:
    lines = [f"top {TOP_REQUESTS} requests, {title} (verb resource/subresource):"]
    for (verb, resource, subresource), requests in top:
        what = f"{resource}/{subresource}" if subresource else resource
        lines.append(f"  {requests:8d}  {requests / count:7.2f}/model  {verb} {what}")
    return lines


def detail_lines(results: Results, details: Details) -> list[str]:
    lines = request_lines("apply -> Ready", details.top_requests, results.count)
    idle = f"idle {results.idle_seconds:.0f} s"
    lines += request_lines(idle, details.idle_top_requests, results.count)
    if details.hot_functions:
        lines.append(
            f"top {TOP_FUNCTIONS} functions by own samples ({details.profile_samples} samples):"
        )
        for function, samples in details.hot_functions:
            share = 100 * samples / max(details.profile_samples, 1)
            lines.append(f"  {samples:7d} {share:5.1f}%  {function}")
    if details.not_ready:
        shown_models = details.not_ready[:SHOWN_NOT_READY]
        lines.append(f"not Ready ({len(details.not_ready)}, first {len(shown_models)}):")
        lines.extend(f"  {model}" for model in shown_models)
    shown = details.warnings[:SHOWN_WARNINGS]
    lines.append(f"Warning Events ({len(details.warnings)}, first {len(shown)}):")
    lines.extend(f"  [{poster or '?'}] {warning}" for poster, warning in shown)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="ModelDeployments (1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON line of numbers")
    parser.add_argument(
        "--idle-seconds", type=float, default=120.0, help="steady-state window (120)"
    )
    parser.add_argument("--profile", type=Path, help="write a py-spy profile (raw) here")
    parser.add_argument(
        "--kubernetes-defaults",
        action="store_true",
        help="the controller-manager at its default client limits (20 requests/s)",
    )
    args = parser.parse_args()
    flags = NO_PROVISIONER_FLAGS + (() if args.kubernetes_defaults else CONTROLLER_MANAGER_FLAGS)

    if args.json:
        # Whatever prints along the way goes to stderr: stdout is the one JSON line.
        with contextlib.redirect_stdout(sys.stderr):
            results, details = run(args.count, args.idle_seconds, args.profile, flags)
        note("\n".join(detail_lines(results, details)))
        print(json.dumps(rounded(results)))
    else:
        results, details = run(args.count, args.idle_seconds, args.profile, flags)
        print("\n".join(table(results) + detail_lines(results, details)))


if __name__ == "__main__":
    main()
