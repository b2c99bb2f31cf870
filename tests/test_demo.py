"""The README's main job, end to end in local mode: real control plane, real operator, the
samples applied with kubectl, the real trainer and server run as local processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.controlplane


def test_make_demo_local_mode_serves_the_samples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelops_envtest", "demo", "--mode", "local", "--exit"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("mode: local")
    table = out.split("$ kubectl get modeldeployments\n", 1)[1].splitlines()
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
