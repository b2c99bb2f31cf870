"""argocd/install is no way into another tenant's namespaces: the application controller applies
what it finds in Redis anywhere, so Redis asks for a password generated in the cluster (never in
git) and takes connections only from the controller and the repo server (CVE-2024-31989); every
Argo CD pod has a NetworkPolicy, as upstream's, and meets the restricted Pod Security Standard;
and the root Application deploys within a project of its own, not `default`.

The policies are checked as built here; the kind cluster of tests/gitops enforces them (kube-router,
deploy/addons/network-policy), and the GitOps flow runs there under them. Redis's password is
checked by running the install's Redis command line and the init container's command for real.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import secrets
import socket
import string
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelops_envtest import argocd, debian
from modelops_envtest.controlplane import ControlPlane, free_port, kubectl_binary
from modelops_envtest.processes import die_with_parent, end
from modelops_envtest.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ROOT_APP = ROOT / "argocd" / "root.yaml"
APPS = ROOT / "argocd" / "apps"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
REDIS = "argocd-redis"
REDIS_PORT = 6379
# Who may reach Redis and the repo server's gRPC: upstream's lists, less the components this
# install does not have (API server, notifications, ApplicationSets).
REDIS_CLIENTS = {"argocd-application-controller", "argocd-repo-server"}
REPO_SERVER_CLIENTS = {"argocd-application-controller"}
REPO_SERVER_GRPC_PORT = 8081
RESTRICTED = "restricted"


@functools.cache
def install() -> tuple[dict[str, Any], ...]:
    """What `kubectl kustomize argocd/install` builds (the pinned kubectl, no flags)."""
    built = subprocess.run(
        [kubectl_binary(), "kustomize", str(argocd.INSTALL)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(built) if doc)


def of_kind(*kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in install() if doc["kind"] in kinds]


def named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions: not read here
    return selector.get("matchLabels", {}).items() <= labels.items()


def policies_for(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return [policy for policy in of_kind("NetworkPolicy") if selects(policy, pod_labels(workload))]


def ingress_from(policy: dict[str, Any], port: int) -> list[dict[str, Any]]:
    """The peers of every ingress rule that opens `port`."""
    return [
        peer
        for rule in policy["spec"].get("ingress", [])
        if any(entry["port"] == port for entry in rule.get("ports", []))
        for peer in rule.get("from", [{}])
    ]


def app_names(peers: list[dict[str, Any]]) -> set[str]:
    """The app.kubernetes.io/name of each peer, failing on any peer that is not a pod of this
    namespace picked by that label."""
    names = set()
    for peer in peers:
        assert set(peer) == {"podSelector"}, f"open beyond Argo CD's pods: {peer}"
        names.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return names


def test_the_install_has_argo_cds_three_workloads() -> None:
    assert {doc["metadata"]["name"] for doc in of_kind(*WORKLOADS)} == {
        "argocd-application-controller",
        "argocd-repo-server",
        REDIS,
    }


def test_every_argo_cd_pod_is_selected_by_a_network_policy() -> None:
    unselected = [
        workload["metadata"]["name"]
        for workload in of_kind(*WORKLOADS)
        if not [
            policy
            for policy in policies_for(workload)
            if "Ingress" in policy["spec"]["policyTypes"]
        ]
    ]
    assert unselected == []


def test_only_the_controller_and_the_repo_server_reach_redis() -> None:
    (policy,) = policies_for(named("Deployment", REDIS))
    rules = policy["spec"]["ingress"]
    assert [rule["ports"] for rule in rules] == [[{"protocol": "TCP", "port": REDIS_PORT}]]
    assert app_names(ingress_from(policy, REDIS_PORT)) == REDIS_CLIENTS


def test_only_the_controller_reaches_the_repo_servers_grpc() -> None:
    (policy,) = policies_for(named("Deployment", "argocd-repo-server"))
    assert app_names(ingress_from(policy, REPO_SERVER_GRPC_PORT)) == REPO_SERVER_CLIENTS


def test_nothing_but_metrics_is_open_beyond_argo_cds_pods() -> None:
    """As upstream's: Prometheus in any namespace may scrape the metrics ports; nothing else
    admits a peer that is not one of Argo CD's pods."""
    for workload in of_kind(*WORKLOADS):
        metrics = {
            port["containerPort"]
            for container in containers(workload)
            for port in container.get("ports", [])
            if port["name"] == "metrics"
        }
        for policy in policies_for(workload):
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from", [{}])
                if all(set(peer) == {"podSelector"} for peer in peers):
                    continue
                ports = {entry["port"] for entry in rule.get("ports", [{"port": "any"}])}
                assert ports <= metrics, (policy["metadata"]["name"], rule)


# -- restricted Pod Security ---------------------------------------------------------------


def restricted_violations(workload: dict[str, Any]) -> list[str]:
    """What the restricted Pod Security Standard (and read-only root filesystems, as upstream's)
    would object to in a workload's pods."""
    spec = pod_spec(workload)
    pod = spec.get("securityContext", {})
    found = [f"pod: {field}" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    found += [
        f"volume {volume['name']}: hostPath"
        for volume in spec.get("volumes", [])
        if "hostPath" in volume
    ]
    for container in containers(workload):
        own = container.get("securityContext", {})
        name = container["name"]
        if own.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot")
        if own.get("runAsUser", pod.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = own.get("seccompProfile", pod.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile")
        if own.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation")
        if own.get("privileged"):
            found.append(f"{name}: privileged")
        capabilities = own.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            found.append(f"{name}: capabilities")
        if own.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: readOnlyRootFilesystem")
    return found


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    violations = {
        workload["metadata"]["name"]: found
        for workload in of_kind(*WORKLOADS)
        if (found := restricted_violations(workload))
    }
    assert violations == {}


def test_argo_cds_namespace_enforces_the_restricted_standard() -> None:
    (namespace,) = of_kind("Namespace")
    labels = namespace["metadata"].get("labels", {})
    assert labels.get("pod-security.kubernetes.io/enforce") == RESTRICTED


@pytest.mark.controlplane
def test_pod_security_admission_admits_every_pod(control_plane: ControlPlane) -> None:
    """The apiserver's own judgement: each workload's pod, created (dry run) in a namespace
    labelled as argocd/install labels its own."""
    (namespace,) = of_kind("Namespace")
    name = f"psa-{free_port()}"
    labels = {
        key: value
        for key, value in namespace["metadata"]["labels"].items()
        if key.startswith("pod-security.kubernetes.io/")
    }
    kubectl = control_plane.kubectl
    kubectl("create", "namespace", name)
    try:
        kubectl("label", "namespace", name, *(f"{key}={value}" for key, value in labels.items()))
        for account in of_kind("ServiceAccount"):
            kubectl("-n", name, "create", "serviceaccount", account["metadata"]["name"])
        for workload in of_kind(*WORKLOADS):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": workload["metadata"]["name"], "namespace": name},
                "spec": pod_spec(workload),
            }
            done = kubectl(
                "create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False
            )
            assert done.returncode == 0 and "violate" not in done.stderr, done.stderr
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


# -- Redis's password ----------------------------------------------------------------------


def redis_container() -> dict[str, Any]:
    (found,) = [c for c in containers(named("Deployment", REDIS)) if c["name"] == "redis"]
    return found


def password_env(container: dict[str, Any]) -> dict[str, Any] | None:
    for entry in container.get("env", []):
        if entry["name"] == "REDIS_PASSWORD":
            found: dict[str, Any] = entry
            return found
    return None


def test_every_client_of_redis_has_its_password() -> None:
    """Each container given `--redis` reads REDIS_PASSWORD (Argo CD's variable) from the Secret
    Redis requires it from."""
    redis = password_env(redis_container())
    assert redis is not None and "value" not in redis, "Redis's password from a Secret, never git"
    secret = redis["valueFrom"]["secretKeyRef"]
    assert (secret["name"], secret["key"]) == (REDIS, "auth")
    clients = [
        (workload["metadata"]["name"], container)
        for workload in of_kind(*WORKLOADS)
        for container in containers(workload)
        if any(arg.startswith("--redis") for arg in container.get("args", []))
    ]
    assert {name for name, _ in clients} == REDIS_CLIENTS
    for name, container in clients:
        assert password_env(container) == redis, name
    assert not [doc for doc in of_kind("Secret") if doc["metadata"]["name"] == REDIS]


def init_container_command() -> list[str]:
    (init,) = pod_spec(named("Deployment", REDIS))["initContainers"]
    command: list[str] = [*init["command"], *init.get("args", [])]
    return command


def run_init_container(
    tools: argocd.ArgoCDTools, control_plane: ControlPlane, namespace: str
) -> subprocess.CompletedProcess[str]:
    """The init container's command, run by the binary the image holds, against the control
    plane (in the pod: its ServiceAccount's token and namespace)."""
    program, *args = init_container_command()
    assert program == "argocd", "the image's binary, run as `argocd`"
    return subprocess.run(
        [
            str(tools.binaries / program), *args,
            f"--kubeconfig={control_plane.kubeconfig}", f"--namespace={namespace}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def password_in(control_plane: ControlPlane, namespace: str) -> str:
    """The password, read as the pods read it: the secretKeyRef of Redis's REDIS_PASSWORD."""
    reference = password_env(redis_container())
    assert reference is not None
    key = reference["valueFrom"]["secretKeyRef"]
    secret = json.loads(
        control_plane.kubectl("-n", namespace, "get", "secret", key["name"], "-o", "json").stdout
    )
    return base64.b64decode(secret["data"][key["key"]]).decode()


@pytest.mark.controlplane
def test_the_init_container_generates_a_password_once(
    control_plane: ControlPlane, namespace: str, argocd_binaries: argocd.ArgoCDTools
) -> None:
    first = run_init_container(argocd_binaries, control_plane, namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    password = password_in(control_plane, namespace)
    assert re.fullmatch(r"[0-9A-Za-z-]{16}", password), "upstream's: 16 of 63 characters"
    # A restarted pod keeps the password its clients already read.
    again = run_init_container(argocd_binaries, control_plane, namespace)
    assert again.returncode == 0, again.stdout + again.stderr
    assert password_in(control_plane, namespace) == password
    # A Secret without a password fails the pod rather than start Redis without one.
    control_plane.kubectl("-n", namespace, "delete", "secret", REDIS)
    control_plane.kubectl("-n", namespace, "create", "secret", "generic", REDIS)
    empty = run_init_container(argocd_binaries, control_plane, namespace)
    assert empty.returncode != 0 and "no password" in empty.stderr, empty.stdout + empty.stderr


def kubelet_expanded(text: str, env: dict[str, str]) -> str:
    """$(VAR) in a container's args, as the kubelet expands it."""
    return re.sub(r"\$\((\w+)\)", lambda match: env.get(match[1], match[0]), text)


@pytest.fixture(scope="module")
def install_redis() -> Iterator[tuple[int, str]]:
    """Redis as argocd/install runs it (Debian's redis-server, as in the image, with the
    container's command and args), on a free loopback port, given a password as the Secret
    the init container makes would give it (test_the_init_container_generates_a_password_once):
    (port, password)."""
    password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
    container = redis_container()
    (program,) = container["command"]
    assert program == "redis-server"
    from_secret = {
        entry["name"]: password
        for entry in container.get("env", [])
        if entry.get("valueFrom", {}).get("secretKeyRef") == {"name": REDIS, "key": "auth"}
    }
    args = [kubelet_expanded(arg, from_secret) for arg in container["args"]]
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="modelops-argocd-redis-")) / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(debian.command("redis-server", package="redis-server")), *args,
                # Later options win: loopback and a free port instead of the pod's 6379.
                "--bind", "127.0.0.1", "--port", str(port),
            ],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        wait_until(lambda: accepts(process, port, log), timeout=30, what=f"Redis ({log})")
        yield port, password
    finally:
        end(process, grace_seconds=10)


def accepts(process: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"redis-server exited:\n{log.read_text()}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def redis_replies(port: int, *commands: list[str]) -> list[str]:
    """Each command's reply line, on one connection (RESP, as any client speaks it)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        stream = connection.makefile("rwb")
        for command in commands:
            encoded = f"*{len(command)}\r\n" + "".join(
                f"${len(part.encode())}\r\n{part}\r\n" for part in command
            )
            stream.write(encoded.encode())
            stream.flush()
            replies.append(stream.readline().decode().rstrip("\r\n"))
    return replies


def test_redis_refuses_a_client_without_the_password(install_redis: tuple[int, str]) -> None:
    port, _ = install_redis
    # What a pod of another tenant would send: read, then poison, the manifest cache.
    replies = redis_replies(port, ["PING"], ["KEYS", "*"], ["SET", "mfst|poisoned", "x"])
    assert all(reply.startswith("-NOAUTH") for reply in replies), replies
    assert redis_replies(port, ["AUTH", "guessed"], ["PING"])[0].startswith("-WRONGPASS")


def test_redis_serves_a_client_with_the_password(install_redis: tuple[int, str]) -> None:
    port, password = install_redis
    assert redis_replies(port, ["AUTH", password], ["PING"]) == ["+OK", "+PONG"]


# -- the root Application's project ---------------------------------------------------------


def root_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(ROOT_APP.read_text()) if doc]


def root_application() -> dict[str, Any]:
    (app,) = [doc for doc in root_documents() if doc["kind"] == "Application"]
    return app


def children() -> list[dict[str, Any]]:
    return [
        doc for path in sorted(APPS.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]  # fmt: skip


def test_the_root_application_deploys_within_a_project_of_its_own() -> None:
    app = root_application()
    project_name = app["spec"]["project"]
    assert project_name != "default"
    (project,) = [
        doc
        for doc in root_documents()
        if doc["kind"] == "AppProject" and doc["metadata"]["name"] == project_name
    ]
    spec = project["spec"]
    # From this repository only, into Argo CD's namespace only, nothing cluster-scoped.
    assert spec["sourceRepos"] == [app["spec"]["source"]["repoURL"]]
    assert spec["destinations"] == [app["spec"]["destination"]]
    assert not spec.get("clusterResourceWhitelist")
    admitted = {(entry["group"], entry["kind"]) for entry in spec["namespaceResourceWhitelist"]}
    assert admitted == {("argoproj.io", "Application"), ("argoproj.io", "AppProject")}
    # What argocd/apps holds fits, and the children keep their own, narrower project.
    for doc in children():
        assert (doc["apiVersion"].split("/")[0], doc["kind"]) in admitted, doc["kind"]
        assert doc["metadata"]["namespace"] == app["spec"]["destination"]["namespace"]
        if doc["kind"] == "Application":
            assert doc["spec"]["project"] == "modelops", doc["metadata"]["name"]
