"""The lint step's security scanners: bandit over the Python sources, checkov over what modelops
puts into a cluster, each finding either fixed or listed, with its reason, in
envtest/security-skips.yaml.

    python -m modelops_envtest.security_scan          (part of `make lint`)

checkov reads four rendered sets: `install` (dist/install.yaml as `make release` writes it),
`argocd` (argocd/install), `monitoring` (deploy/base/monitoring) and `model` (what the operator
builds for each sample in deploy/samples). It prints the passed and failed counts of each set,
and fails on a finding that no entry lists, and on an entry that lists nothing: a fixed finding's
entry goes with it. Both scanners are pinned and run by `uv tool run`, beside the project's
environment (checkov's own pins would not fit it)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelops_envtest import release
from modelops_envtest.controlplane import kubectl_binary

REPOSITORY = Path(__file__).resolve().parents[3]
SKIPS = REPOSITORY / "envtest" / "security-skips.yaml"
BANDIT = "bandit==1.9.4"
CHECKOV = "checkov==3.3.30"
PYTHON_SOURCES = ("operator/src", "inference-server/src", "trainer-job/src", "envtest/src")
SETS = ("install", "argocd", "monitoring", "model")


@dataclass(frozen=True)
class Finding:
    check: str
    # bandit: the file and line; checkov: "<set>:<Kind>.<namespace>.<name>".
    where: str
    says: str


@dataclass(frozen=True)
class Skip:
    check: str
    where: str
    reason: str

    def covers(self, finding: Finding) -> bool:
        return fnmatch.fnmatchcase(finding.check, self.check) and fnmatch.fnmatchcase(
            finding.where, self.where
        )


def load_skips(path: Path = SKIPS) -> dict[str, list[Skip]]:
    """The reviewed skips of each scanner; every entry has a check, a place and a reason."""
    listed = yaml.safe_load(path.read_text()) or {}
    skips: dict[str, list[Skip]] = {}
    for scanner in ("bandit", "checkov"):
        skips[scanner] = []
        for entry in listed.get(scanner) or []:
            if set(entry) != {"check", "where", "reason"} or not str(entry["reason"]).strip():
                raise ValueError(f"{path}: an entry needs check, where and a reason: {entry}")
            skips[scanner].append(Skip(entry["check"], entry["where"], entry["reason"]))
    return skips


def model_objects() -> list[dict[str, Any]]:
    """What the operator builds for each sample model: its training Job, claim, serving
    Deployment and Service, autoscaler, disruption budget, dashboard and ServiceMonitor."""
    from modelops_operator import api, builders
    from modelops_operator.monitoring import grafana, prometheus
    from modelops_operator.settings import Settings

    settings = Settings()
    built: list[dict[str, Any]] = []
    samples = sorted((REPOSITORY / "deploy" / "samples").rglob("*.yaml"))
    for manifest in (doc for sample in samples for doc in yaml.safe_load_all(sample.read_text())):
        if not isinstance(manifest, dict) or manifest.get("kind") != "ModelDeployment":
            continue
        name, namespace = manifest["metadata"]["name"], "ml"
        spec = api.ModelDeploymentSpec.model_validate(manifest["spec"])
        record = api.ModelRecord(
            version="v0123456789ab",
            sha256="0" * 64,
            artifact_path=f"/models/{namespace}/{name}/v0123456789ab",
            metrics={},
        )
        built += [
            builders.build_server_deployment(name, namespace, spec, record, settings),
            builders.build_service(name, namespace),
            builders.build_disruption_budget(name, namespace),
            builders.build_network_policy(name, namespace, settings),
            grafana.build_dashboard_configmap(namespace, name),
            prometheus.build_service_monitor(namespace, name, "15s"),
        ]
        if spec.training is not None:
            built.append(builders.build_training_job(name, namespace, spec, settings))
        if (claim := builders.build_claim(name, namespace, spec.storage, settings)) is not None:
            built.append(claim)
        if spec.serving.autoscaling is not None:
            built.append(builders.build_autoscaler(name, namespace, spec.serving.autoscaling))
    return built


def render_sets(directory: Path) -> dict[str, Path]:
    """Each set, written as one YAML stream into `directory`."""

    def kustomized(path: str) -> str:
        return subprocess.run(
            [kubectl_binary(), "kustomize", str(REPOSITORY / path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    texts = {
        "install": release.install_manifest(release.base_objects(), "0.0.0"),
        "argocd": kustomized("argocd/install"),
        "monitoring": kustomized("deploy/base/monitoring"),
        "model": yaml.safe_dump_all(model_objects(), sort_keys=False),
    }
    paths = {}
    for name in SETS:
        paths[name] = directory / f"{name}.yaml"
        paths[name].write_text(texts[name])
    return paths


def _tool(package: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["uv", "tool", "run", "--from", package, package.split("==")[0], *args],
        capture_output=True,
        text=True,
        check=False,
    )


def bandit_findings() -> list[Finding]:
    done = _tool(BANDIT, "-q", "-r", "-f", "json", *(str(REPOSITORY / p) for p in PYTHON_SOURCES))
    if done.returncode not in (0, 1):
        raise RuntimeError(f"bandit failed:\n{done.stderr}")
    return [
        Finding(
            result["test_id"],
            f"{Path(result['filename']).relative_to(REPOSITORY)}:{result['line_number']}",
            result["issue_text"],
        )
        for result in json.loads(done.stdout)["results"]
    ]


def checkov_results(paths: dict[str, Path]) -> tuple[list[Finding], dict[str, Counter[str]]]:
    """The failed checks of every set, and each set's passed and failed counts."""
    set_of = {path.name: name for name, path in paths.items()}
    directory = next(iter(paths.values())).parent
    done = _tool(
        CHECKOV, "-d", str(directory), "--framework", "kubernetes", "-o", "json",
        "--skip-download",
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed:\n{done.stderr}")
    results = json.loads(done.stdout)["results"]
    counts: dict[str, Counter[str]] = {name: Counter() for name in SETS}
    findings = []
    for outcome in ("passed", "failed"):
        for check in results[f"{outcome}_checks"]:
            name = set_of[Path(check["file_path"]).name]
            counts[name][outcome] += 1
            if outcome == "failed":
                findings.append(
                    Finding(check["check_id"], f"{name}:{check['resource']}", check["check_name"])
                )
    return findings, counts


def judged(findings: list[Finding], skips: list[Skip]) -> tuple[list[Finding], list[Skip]]:
    """The findings that no skip covers, and the skips that cover no finding."""
    unlisted = [f for f in findings if not any(skip.covers(f) for skip in skips)]
    stale = [skip for skip in skips if not any(skip.covers(f) for f in findings)]
    return unlisted, stale


def main() -> int:
    skips = load_skips()
    with tempfile.TemporaryDirectory() as directory:
        paths = render_sets(Path(directory))
        checkov, counts = checkov_results(paths)
    bandit = bandit_findings()
    failed = False
    for scanner, findings in (("bandit", bandit), ("checkov", checkov)):
        unlisted, stale = judged(findings, skips[scanner])
        for finding in unlisted:
            print(f"{scanner}: {finding.check} at {finding.where}: {finding.says}")
        for skip in stale:
            print(f"{scanner}: {SKIPS.name} lists {skip.check} at {skip.where}, found nowhere")
        failed |= bool(unlisted or stale)
        print(
            f"{scanner}: {len(findings)} findings, {len(findings) - len(unlisted)} of them "
            f"reviewed in {SKIPS.relative_to(REPOSITORY)}"
        )
    for name in SETS:
        print(f"checkov {name}: {counts[name]['passed']} passed, {counts[name]['failed']} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
