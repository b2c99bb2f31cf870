"""The GitHub Actions workflow a fork runs (.github/workflows/ci.yml), as far as it can be
checked without GitHub: actionlint (built from the Go module proxy) finds nothing, every action
is pinned by commit SHA, each job's token has only what it uses, the images build on the
upstream Python images the Dockerfiles default to (pinned when their digests are set), and the
step that hands new images to Argo CD (deploy/set-images.sh) gives the production overlay exactly
those images, with a stock kubectl."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_manifests import ROOT, run
from modelops_envtest.binaries import go_tool
from modelops_envtest.controlplane import kubectl_binary

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT_VERSION = "v1.7.12"
KUSTOMIZE_VERSION = "v5.8.1"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DOCKERFILES = [
    ROOT / folder / "Dockerfile" for folder in ("operator", "trainer-job", "inference-server")
]
IMAGES = {
    "operator": "registry.example/acme/modelops-operator@sha256:" + "1" * 64,
    "trainer": "registry.example/acme/modelops-trainer@sha256:" + "2" * 64,
    "inference-server": "registry.example/acme/modelops-inference-server@sha256:" + "3" * 64,
}


def test_there_is_a_workflow() -> None:
    assert [path.name for path in WORKFLOWS] == ["ci.yml"]


def test_actionlint_finds_nothing() -> None:
    actionlint = go_tool(
        "actionlint", "github.com/rhysd/actionlint/cmd/actionlint", ACTIONLINT_VERSION
    )
    done = subprocess.run(
        [str(actionlint), *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_sha(workflow: Path) -> None:
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    uses = [step["uses"] for job in jobs.values() for step in job["steps"] if "uses" in step]
    assert uses
    assert [action for action in uses if not PINNED.match(action)] == []


def test_each_job_has_only_the_permissions_it_uses() -> None:
    workflow = yaml.safe_load(CI.read_text())
    assert workflow["permissions"] == {}
    permissions = {name: job["permissions"] for name, job in workflow["jobs"].items()}
    assert permissions == {
        "test": {"contents": "read"},
        # Builds and pushes the images: runs third-party code, so it may not push to the repo.
        "images": {"contents": "read", "packages": "write"},
        # Commits the new digests to main; builds nothing.
        "deploy": {"contents": "write"},
    }
    # Only the job that pushes a commit keeps the token in its checkout.
    for name, job in workflow["jobs"].items():
        checkouts = [
            step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout@")
        ]
        persisted = [step.get("with", {}).get("persist-credentials", True) for step in checkouts]
        assert persisted == [name == "deploy"], name


def test_the_images_build_on_the_upstream_python_images() -> None:
    workflow = yaml.safe_load(CI.read_text())
    env = workflow["env"]
    assert env["PYTHON_BASE_IMAGE"] == "python:3.11-slim-bookworm"
    assert env["PYTHON_BUILD_BASE_IMAGE"] == "python:3.11-bookworm"
    # Empty (the tag as it is) or a digest that pins it.
    for name in ("PYTHON_BASE_DIGEST", "PYTHON_BUILD_BASE_DIGEST"):
        assert env[name] == "" or DIGEST.match(env[name]), name
    # The Dockerfiles default to the same images, so a plain `docker build` matches the workflow's.
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert f"ARG BASE_IMAGE={env['PYTHON_BASE_IMAGE']}\n" in text, dockerfile
        if "BUILD_BASE_IMAGE" in text:
            assert f"ARG BUILD_BASE_IMAGE={env['PYTHON_BUILD_BASE_IMAGE']}\n" in text, dockerfile
    # Every job that builds images sets MODELOPS_BASE_IMAGE and MODELOPS_BUILD_BASE_IMAGE from
    # them first (images/base.sh pulls such bases; it debootstraps only modelops/... ones).
    for name in ("test", "images"):
        runs = [step.get("run", "") for step in workflow["jobs"][name]["steps"]]
        sets = next(i for i, run in enumerate(runs) if "MODELOPS_BASE_IMAGE=" in run)
        builds = next(
            i for i, run in enumerate(runs) if "make test" in run or "images/build.sh" in run
        )
        assert sets < builds, name
        assert "MODELOPS_BUILD_BASE_IMAGE=" in runs[sets], name


def test_set_images_gives_the_production_overlay_those_images(tmp_path: Path) -> None:
    for folder in ("deploy", "crds"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    kustomize = go_tool("kustomize", "sigs.k8s.io/kustomize/kustomize/v5", KUSTOMIZE_VERSION)
    subprocess.run(
        ["bash", str(tmp_path / "deploy" / "set-images.sh"), *IMAGES.values()],
        env={**os.environ, "KUSTOMIZE": str(kustomize)},
        check=True,
    )
    built = run(
        [kubectl_binary(), "kustomize", str(tmp_path / "deploy" / "overlays" / "production")]
    )
    operator = next(
        document
        for document in yaml.safe_load_all(built)
        if document["kind"] == "Deployment" and document["metadata"]["name"] == "modelops-operator"
    )
    container = operator["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["image"] == IMAGES["operator"]
    assert env["MODELOPS_TRAINER_IMAGE"] == IMAGES["trainer"]
    assert env["MODELOPS_SERVER_IMAGE"] == IMAGES["inference-server"]
    # Only the images changed: each now names the registry's image by digest.
    before = yaml.safe_load(
        (ROOT / "deploy" / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    after = yaml.safe_load(
        (tmp_path / "deploy" / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    assert {**after, "images": None} == {**before, "images": None}
    assert {
        entry["name"]: f"{entry['newName']}@{entry['digest']}" for entry in after["images"]
    } == {f"modelops/{component}": image for component, image in IMAGES.items()}
