"""`modelops-train`: stdout carries only the summary; every failure is one `error:` line on
stderr and in the termination message, with a non-zero exit."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelops_trainer import cli

Spec = dict[str, Any]


@pytest.fixture(autouse=True)
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(path))
    monkeypatch.delenv("MODELOPS_TRAINING_SPEC", raising=False)
    monkeypatch.delenv("MODELOPS_NAMESPACE", raising=False)
    monkeypatch.delenv("MODELOPS_KEEP_VERSIONS", raising=False)
    return path


def _run(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    status = cli.main(list(args))
    out, err = capfd.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_a_spec_file_trains_and_prints_the_summary(
    iris_spec: Callable[..., Spec],
    tmp_path: Path,
    output_root: Path,
    termination_log: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    spec_file = tmp_path / "iris.yaml"
    spec_file.write_text(yaml.safe_dump(iris_spec()))
    status, out, _ = _run(capfd, "--spec", str(spec_file), "--output-root", str(output_root))

    assert status == 0
    [line] = out
    summary = json.loads(line)
    assert (summary["name"], summary["namespace"]) == ("iris", "default")  # the file's name
    assert Path(summary["artifactPath"], "model.joblib").is_file()
    assert termination_log.read_text() == line + "\n"


def test_the_operators_way_spec_and_namespace_from_the_environment(
    iris_spec: Callable[..., Spec],
    output_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(iris_spec()))
    monkeypatch.setenv("MODELOPS_NAMESPACE", "team-a")
    status, out, _ = _run(capfd, "--output-root", str(output_root), "--name", "flowers")
    assert status == 0
    summary = json.loads(out[0])
    assert Path(summary["artifactPath"]).parts[-3:-1] == ("team-a", "flowers")


def test_versions_outside_the_kept_ones_are_removed_after_a_run(
    iris_spec: Callable[..., Spec],
    output_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def train(seed: int) -> str:
        monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(iris_spec(randomSeed=seed)))
        status, out, err = _run(capfd, "--output-root", str(output_root), "--name", "iris")
        assert status == 0, err
        version: str = json.loads(out[0])["version"]
        return version

    first, second, third = train(1), train(2), train(3)
    model_directory = output_root / "default" / "iris"
    (model_directory / "notes").mkdir()
    assert {path.name for path in model_directory.iterdir()} == {first, second, third, "notes"}

    monkeypatch.setenv("MODELOPS_KEEP_VERSIONS", f"{first},vffffffffffff")
    fourth = train(4)
    assert {path.name for path in model_directory.iterdir()} == {first, fourth, "notes"}

    # An empty list keeps only what is trained; absent, nothing is removed (standalone use).
    monkeypatch.setenv("MODELOPS_KEEP_VERSIONS", "")
    assert train(4) == fourth
    assert {path.name for path in model_directory.iterdir()} == {fourth, "notes"}
    monkeypatch.delenv("MODELOPS_KEEP_VERSIONS")
    train(5)
    assert len([path for path in model_directory.iterdir()]) == 3


def test_a_spec_on_stdin(
    iris_spec: Callable[..., Spec],
    output_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(iris_spec())))
    args = ("--spec", "-", "--output-root", str(output_root), "--name", "m", "--namespace", "ns")
    status, out, _ = _run(capfd, *args)
    assert status == 0
    assert json.loads(out[0])["namespace"] == "ns"


def test_a_whole_model_deployment_names_itself(
    iris_spec: Callable[..., Spec],
    tmp_path: Path,
    output_root: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    resource = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris-prod", "namespace": "ml"},
        "spec": {"training": iris_spec(), "serving": {"replicas": 2}},
    }
    spec_file = tmp_path / "sample.yaml"
    spec_file.write_text(yaml.safe_dump(resource))
    status, out, _ = _run(capfd, "--spec", str(spec_file), "--output-root", str(output_root))
    assert status == 0
    assert json.loads(out[0])["artifactPath"].startswith(str(output_root / "ml" / "iris-prod"))


NUMBERS = "a,b,y\n" + "".join(f"{i},{i % 4},{i % 2}\n" for i in range(20))
FAILURES: dict[str, tuple[Spec | str, str]] = {
    "unknown dataset": ({"dataset": {"builtin": "titanic"}}, "unknown builtin dataset 'titanic'"),
    "unknown estimator": ({"estimator": "XGBClassifier"}, "unknown estimator 'XGBClassifier'"),
    "unknown hyperparameter": (
        {"hyperparameters": {"depth": 3}},
        "RandomForestClassifier has no hyperparameter 'depth'",
    ),
    "ill-typed hyperparameter": (
        {"hyperparameters": {"n_estimators": 2.5}},
        "bad hyperparameter: The 'n_estimators' parameter of RandomForestClassifier must be an int",
    ),
    "unknown key": ({"randomseed": 1}, "randomseed: unknown key: did you mean 'randomSeed'?"),
    "missing target column": (
        {"dataset": {"csv": {"path": "{csv}", "targetColumn": "label"}}},
        "target column 'label' is not in CSV",
    ),
    "empty data": (
        {"dataset": {"csv": {"path": "{empty}", "targetColumn": "y"}}},
        "has a header but no data rows",
    ),
    "all-NaN data": (
        {"dataset": {"csv": {"path": "{nan}", "targetColumn": "y"}}},
        "has no feature values at all",
    ),
    "unreadable URL": (
        {"dataset": {"csv": {"url": "http://127.0.0.1:9/x.csv", "targetColumn": "y"}}},
        "cannot download CSV from http://127.0.0.1:9/x.csv",
    ),
    "too few rows to stratify": (
        {"dataset": {"csv": {"path": "{rare}", "targetColumn": "y"}}},
        "class(es) '7' have a single row",
    ),
    "not YAML": ("dataset: [unclosed", "is not valid YAML/JSON"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_each_failure_is_one_line_that_says_what_to_fix(
    case: str,
    iris_spec: Callable[..., Spec],
    tmp_path: Path,
    output_root: Path,
    termination_log: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    change, expected = FAILURES[case]
    files = {
        "csv": NUMBERS,
        "empty": "a,y\n",
        "nan": "a,b,y\n,,1\n,,2\n",
        "rare": NUMBERS + "20,0,7\n",
    }
    text = change if isinstance(change, str) else json.dumps(iris_spec(**change))
    for key, content in files.items():
        (tmp_path / f"{key}.csv").write_text(content)
        text = text.replace("{" + key + "}", str(tmp_path / f"{key}.csv"))
    spec_file = tmp_path / "m.yaml"
    spec_file.write_text(text)

    status, out, err = _run(capfd, "--spec", str(spec_file), "--output-root", str(output_root))
    assert status == cli.EXIT_BAD_INPUT
    assert out == []
    [line] = err
    assert line.startswith("error: ")
    assert expected in line
    assert termination_log.read_text() == line + "\n"
    assert not output_root.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "no training spec: pass --spec FILE (- for stdin) or set $MODELOPS_TRAINING_SPEC"),
        (("--spec", "-"), "no model name: pass --name"),
        (("--spec", "/nonexistent.yaml"), "cannot read the spec file /nonexistent.yaml"),
    ],
)
def test_missing_inputs_are_named(
    args: tuple[str, ...],
    expected: str,
    output_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("{}"))
    status, _, err = _run(capfd, *args, "--output-root", str(output_root))
    assert status == cli.EXIT_BAD_INPUT
    [line] = err
    assert line.startswith(f"error: {expected}")


def test_a_bug_is_reported_as_such_after_its_traceback(
    iris_spec: Callable[..., Spec],
    output_root: Path,
    termination_log: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "train", broken)
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(iris_spec()))
    status, _, err = _run(capfd, "--output-root", str(output_root), "--name", "m")
    assert status == cli.EXIT_INTERNAL_ERROR
    assert err[0].startswith("Traceback")
    assert err[-1].startswith("error: internal error (RuntimeError: boom): this is a bug")
    assert termination_log.read_text() == err[-1] + "\n"


def test_outside_a_pod_no_termination_log_is_made(
    iris_spec: Callable[..., Spec],
    tmp_path: Path,
    output_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MODELOPS_TERMINATION_LOG")
    monkeypatch.setattr(cli, "KUBERNETES_TERMINATION_LOG", tmp_path / "absent")
    monkeypatch.setenv("MODELOPS_TRAINING_SPEC", json.dumps(iris_spec()))
    assert _run(capfd, "--output-root", str(output_root), "--name", "m")[0] == 0
    assert not (tmp_path / "absent").exists()


def test_the_installed_command_keeps_stdout_clean(
    iris_spec: Callable[..., Spec], tmp_path: Path, output_root: Path
) -> None:
    """The console script, as the container runs it. A verbose SVC prints progress from C
    (libsvm), beneath Python's sys.stdout; none of it may reach stdout."""
    command = Path(sys.executable).parent / "modelops-train"
    env = os.environ | {"MODELOPS_TERMINATION_LOG": str(tmp_path / "log")}
    spec = iris_spec(estimator="SVC", hyperparameters={"verbose": True})
    run = subprocess.run(
        [str(command), "--spec", "-", "--output-root", str(output_root), "--name", "m"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    assert json.loads(line)["name"] == "m"
    assert "optimization finished" in run.stderr  # libsvm's own progress line
