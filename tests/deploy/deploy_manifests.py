"""Building and reading the deploy/ and argocd/ manifests, for the tests in this folder."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any, cast

import yaml
from modelops_envtest import release
from modelops_envtest.controlplane import ControlPlane, kubectl_binary
from modelops_envtest.kubelet import Kubelet
from modelops_envtest.operator import OperatorProcess
from modelops_envtest.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
DEPLOY = ROOT / "deploy"
SAMPLES = DEPLOY / "samples"
ARGOCD = ROOT / "argocd"
# Argo CD's own CRDs, shared test data beside the repository (never copied into it).
SHARED_ARGOCD = ROOT.parent / "shared" / "argocd"

KUSTOMIZATIONS = sorted(
    path.parent.relative_to(ROOT)
    for path in DEPLOY.rglob("kustomization.yaml")
    if SAMPLES not in path.parents
)
OVERLAYS = sorted(path.relative_to(ROOT) for path in (DEPLOY / "overlays").iterdir())
MONITORING_NAMESPACE = "modelops-system"
# The release the tests make with `make release`'s code.
RELEASE_VERSION = "0.2.0"
MODELS_NAMESPACE = "ml"
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "APIService",
    }
)


def run(args: list[str], stdin: str | None = None) -> str:
    """Run a command, failing with its stderr in the message."""
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def kubectl_ok(control_plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    """control_plane.kubectl, failing with kubectl's stderr in the message."""
    done = control_plane.kubectl(*args, stdin=stdin, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def dry_run_apply(control_plane: ControlPlane, source: str, stdin: str | None = None) -> Any:
    """A strict server-side dry-run `kubectl apply -f source`: what the apiserver would store."""
    out = kubectl_ok(
        control_plane,
        "apply", "--dry-run=server", "--validate=strict", "-o", "json", "-f", source,
        stdin=stdin,
    )  # fmt: skip
    return json.loads(out)


@functools.cache
def build(path: Path) -> str:
    """A stock `kubectl kustomize` of a folder relative to the repository, no flags (the pinned
    kubectl that the control plane uses; building needs no apiserver)."""
    return run([kubectl_binary(), "kustomize", str(ROOT / path)])


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def built(path: Path | str) -> list[dict[str, Any]]:
    return documents(build(Path(path)))


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def find_prefixed(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated object, whose name kustomize suffixes with a hash."""
    matches = [
        doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"].startswith(prefix)
    ]
    assert len(matches) == 1, f"expected one {kind} {prefix}*, found {len(matches)}"
    return matches[0]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env(container_spec: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container_spec.get("env", [])}


def volume(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == name)


def load_yaml_files(folder: Path) -> list[dict[str, Any]]:
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in documents(path.read_text())]


def rendered(
    helm: release.Helm, chart: Path, *values: str, namespace: str = release.NAMESPACE
) -> list[dict[str, Any]]:
    """`helm template` of the chart into `namespace`, with `--set-json` values."""
    sets = [arg for value in values for arg in ("--set-json", value)]
    out = helm.run("template", "modelops", str(chart), "--namespace", namespace, *sets).stdout
    return documents(out)


def can(control_plane: ControlPlane, user: str, verb: str, resource: str, *args: str) -> bool:
    answer = control_plane.kubectl(
        "auth", "can-i", verb, resource, f"--as={user}", *args, check=False
    )
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


def service_account_kubeconfig(
    control_plane: ControlPlane, directory: Path, namespace: str = MONITORING_NAMESPACE
) -> Path:
    """The admin kubeconfig's cluster, with the operator ServiceAccount's token (of the
    release in `namespace`) as the user."""
    token = kubectl_ok(
        control_plane, "-n", namespace, "create", "token", "modelops-operator", "--duration=1h"
    ).strip()
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["users"] = [{"name": "modelops-operator", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "modelops-operator"
    path = directory / "operator-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def serve_model(
    control_plane: ControlPlane,
    kubelet: Kubelet,
    namespace: str,
    manifest: dict[str, Any],
    workdir: Path,
    operator: OperatorProcess,
) -> None:
    """`kubectl apply` the model, then take it to Ready under `operator`, playing the
    kubelet's part: its training pod ends with a real training's summary, its server pods
    turn ready."""
    from modelops_trainer import train

    name = manifest["metadata"]["name"]
    kubectl_ok(control_plane, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest))

    def model() -> dict[str, Any]:
        found = control_plane.kubectl("-n", namespace, "get", "mdep", name, "-o", "json")
        return cast(dict[str, Any], json.loads(found.stdout))

    def phase() -> str | None:
        return cast(str | None, (model().get("status") or {}).get("phase"))

    def current_job() -> str | None:
        body = model()
        status = body.get("status") or {}
        if status.get("observedGeneration") != body["metadata"]["generation"]:
            return None
        return cast(str | None, (status.get("training") or {}).get("jobName"))

    job = wait_until(current_job, timeout=90, what=f"the training Job ({operator.log_tail()})")
    summary = train(
        manifest["spec"]["training"], workdir / "artifacts", name=name, namespace=namespace
    )
    kubelet.finish_training(namespace, job, summary)
    wait_until(
        lambda: phase() in ("Deploying", "Ready"),
        timeout=60,
        what=f"{name} Deploying (now {phase()}; {operator.log_tail()})",
    )
    kubelet.serve_until(
        namespace,
        name,
        lambda: phase() == "Ready",
        timeout=90,
        what=f"{name} Ready (now {phase()}; {operator.log_tail()})",
    )
