"""The README's main job, end to end, in both modes: kind mode (a real cluster from the node image
built here) and local mode (real control plane and operator, the trainer and server as local
processes). Each prints the samples Ready and answers the curl commands it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "kind", marks=[pytest.mark.kind, pytest.mark.own_clusters, pytest.mark.timeout(1200)]
        ),
        pytest.param("local", marks=pytest.mark.controlplane),
    ],
)
def test_make_demo_serves_the_samples(mode: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelops_envtest", "demo"],
        capture_output=True,
        text=True,
        timeout=1200,
        env={
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MODELOPS_DEMO": mode,
            "MODELOPS_DEMO_EXIT": "1",
        },
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith(f"mode: {mode}")
    if mode == "kind":
        # Only the root Application was applied: the rest came from git through Argo CD.
        assert "$ kubectl apply -f argocd/root.yaml" in out
        assert "$ kubectl apply -f deploy/samples/" not in out
        applications = out.split("$ kubectl -n argocd get applications\n", 1)[1].splitlines()
        apps = {line.split()[0]: line.split()[1:3] for line in applications[1:4]}
        assert apps == {
            app: ["Synced", "Healthy"]
            for app in ("modelops-models", "modelops-platform", "modelops-root")
        }, applications
    listing = re.search(r"\$ kubectl (-n ml )?get modeldeployments\n", out)
    assert listing, out[-3000:]
    table = out[listing.end() :].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:4]}
    assert sorted(rows) == ["diabetes", "iris", "wine"]
    assert all(row[1] == "Ready" for row in rows.values()), table
    # Both APIs answered the printed curl commands.
    predict_answer = json.loads(out.split("/predict\n", 1)[1].splitlines()[0])
    assert (
        predict_answer["model_name"] == "iris"
        and predict_answer["model_version"] == rows["iris"][2]
    )
    assert predict_answer["predictions"] == ["setosa"]
    infer_answer = json.loads(out.split("/v2/models/iris/infer\n", 1)[1].splitlines()[0])
    assert infer_answer["model_name"] == "iris" and infer_answer["outputs"]
