"""Building and reading the deploy/ and argocd/ manifests, for the tests in this folder."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from modelops_envtest.controlplane import ControlPlane, kubectl_binary

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
MODELS_NAMESPACE = "ml"
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
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
