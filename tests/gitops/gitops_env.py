"""What the GitOps tests see of one place Argo CD runs (see conftest.py)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelops_envtest import argocd

MODELS_NAMESPACE = "ml"
PLATFORM_NAMESPACE = "modelops-system"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class GitOps:
    """One place Argo CD runs: kubectl there, the git server it syncs from, and the version a
    model's endpoint answers with."""

    where: str
    kubectl: Kubectl
    git: argocd.GitServer
    served_version: Callable[[str], str | None]
    logs: Callable[[], str]

    def get(self, *args: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return found

    def app(self, name: str) -> dict[str, Any]:
        return self.get("-n", argocd.NAMESPACE, "application", name)

    def app_state(self, name: str) -> tuple[str, str]:
        """(sync status, health status) of an Application, ("", "") before it exists."""
        found = self.kubectl(
            "-n", argocd.NAMESPACE, "get", "application", name, "-o", "json", check=False
        )
        if found.returncode != 0:
            return ("", "")
        status = json.loads(found.stdout).get("status") or {}
        return (
            status.get("sync", {}).get("status", ""),
            status.get("health", {}).get("status", ""),
        )

    def model(self, name: str) -> dict[str, Any]:
        return self.get("-n", MODELS_NAMESPACE, "mdep", name)

    def model_names(self) -> list[str]:
        out = self.kubectl("-n", MODELS_NAMESPACE, "get", "mdep", "-o", "name").stdout
        return sorted(line.split("/", 1)[1] for line in out.split())


def checked(run: Callable[..., subprocess.CompletedProcess[str]]) -> Kubectl:
    """A kubectl that, with check (the default), fails with kubectl's own message."""

    def kubectl(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = run(*args, stdin=stdin, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    return kubectl


def metadata_version(port: int, model: str) -> str | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v2/models/{model}", timeout=5
        ) as answer:
            versions: list[str] = json.load(answer)["versions"]
    except OSError:
        return None
    return versions[0] if versions else None
