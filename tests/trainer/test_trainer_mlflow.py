"""MLflow tracking against a real `mlflow server`: every version the trainer makes is a run
with its parameters, metrics and data fingerprint, and a registered model version that MLflow
itself loads; a reused version logs nothing again; an unreachable server fails the run in
words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pytest
from modelops_trainer import artifact, champion, cli
from modelops_trainer.errors import TrainingError
from modelops_trainer.tracking import Tracking
from modelops_trainer.training import train
from sklearn.datasets import load_wine

SPEC: dict[str, Any] = {
    "dataset": {"builtin": "wine"},
    "estimator": "LogisticRegression",
    "hyperparameters": {"max_iter": 5000, "C": 0.5},
    "testSize": 0.25,
    "randomSeed": 3,
}


def test_a_trained_version_is_a_run_and_a_registered_model(
    mlflow_tracking: str, tmp_path: Path
) -> None:
    summary = train(SPEC, tmp_path, "wine", "team-a", tracking=Tracking(mlflow_tracking))
    logged = summary["mlflow"]
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking)
    run = client.get_run(logged["runId"])
    assert run.data.params["estimator"] == "LogisticRegression"
    assert run.data.params["hyperparameters.C"] == "0.5"
    assert run.data.params["dataset"] == "builtin dataset wine"
    assert run.data.metrics == pytest.approx(summary["metrics"])
    assert run.data.tags["modelops.version"] == summary["version"]
    assert len(run.data.tags["modelops.dataFingerprint"]) >= 16
    assert run.info.run_name == summary["version"]
    # Global importance beside the model: the numbers metadata.json keeps, and their chart.
    logged_files = {entry.path for entry in client.list_artifacts(logged["runId"])}
    assert {"importance.json", "importance.svg"} <= logged_files
    mlflow.set_tracking_uri(mlflow_tracking)
    importance = mlflow.artifacts.load_dict(f"runs:/{logged['runId']}/importance.json")
    metadata = json.loads((Path(summary["artifactPath"]) / "metadata.json").read_text())
    assert importance == metadata["importance"]
    chart = mlflow.artifacts.load_text(f"runs:/{logged['runId']}/importance.svg")
    assert chart.startswith("<svg") and next(iter(importance["features"])) in chart
    assert logged["runUrl"] == (
        f"{mlflow_tracking}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )

    version = client.get_model_version("team-a.wine", logged["modelUri"].rsplit("/", 1)[1])
    assert version.run_id == logged["runId"]
    mlflow.set_tracking_uri(mlflow_tracking)
    registered = mlflow.sklearn.load_model(logged["modelUri"])
    ours = joblib.load(Path(summary["artifactPath"]) / "model.joblib")
    rows = load_wine().data[::7]
    assert registered.predict(rows).tolist() == ours.predict(rows).tolist()

    # The same inputs again, the version recorded in status: it is reported, with the run that
    # made it, and no run or model version is added.
    recorded = artifact.Provenance({summary["version"]: summary})
    again = train(
        SPEC, tmp_path, "wine", "team-a", tracking=Tracking(mlflow_tracking), provenance=recorded
    )
    assert again["mlflow"] == logged
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert len(client.search_model_versions("name='team-a.wine'")) == 1


def test_the_cli_logs_where_mlflow_tracking_uri_says(
    mlflow_tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking)
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    spec = tmp_path / "iris.yaml"
    spec.write_text('{"dataset": {"builtin": "iris"}, "estimator": "DecisionTreeClassifier"}')
    assert cli.main(["--spec", str(spec), "--output-root", str(tmp_path / "out")]) == 0
    summary = (tmp_path / "termination-log").read_text()
    assert '"modelUri": "models:/default.iris/1"' in summary


def test_an_unreachable_server_fails_the_run_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's own retries ride out a tracking server's restart for minutes: not here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tracking = Tracking("http://127.0.0.1:9")
    with pytest.raises(
        TrainingError, match=r"cannot log the run to MLflow at http://127\.0\.0\.1:9"
    ):
        train(SPEC | {"randomSeed": 4}, tmp_path, "wine", "team-a", tracking=tracking)


def test_each_search_trial_is_a_nested_run(mlflow_tracking: str, tmp_path: Path) -> None:
    spec = SPEC | {
        "hyperparameters": {"max_iter": 5000},
        "search": {"trials": 4, "parameters": {"C": {"type": "Float", "low": 0.01, "high": 10}}},
    }
    summary = train(spec, tmp_path, "wine-search", "team-a", tracking=Tracking(mlflow_tracking))
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking)
    parent = client.get_run(summary["mlflow"]["runId"])
    assert parent.data.params["search.trials"] == "4"
    assert parent.data.params["hyperparameters.C"] == str(summary["search"]["parameters"]["C"])
    trials = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(run.info.run_name for run in trials) == [f"trial-{n}" for n in range(4)]
    best = max(run.data.metrics["cv_accuracy"] for run in trials)
    assert best == pytest.approx(summary["search"]["score"])


def test_the_champion_job_points_the_alias_at_a_version(
    mlflow_tracking: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    tracking = Tracking(mlflow_tracking)
    for seed in (1, 2):
        train(SPEC | {"randomSeed": seed}, tmp_path, "wine-champion", "team-b", tracking=tracking)
    client = mlflow.MlflowClient(tracking_uri=mlflow_tracking)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking)
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(tmp_path / "termination-log"))
    for version in ("2", "1"):
        arguments = ["--model", "team-b.wine-champion", "--version", version, "--alias", "prod"]
        assert champion.main(arguments) == 0
        assert client.get_model_version_by_alias("team-b.wine-champion", "prod").version == version
    assert json.loads((tmp_path / "termination-log").read_text())["version"] == "1"

    unknown = ["--model", "team-b.nothing", "--version", "1", "--alias", "prod"]
    assert champion.main(unknown) == 1
    said = (tmp_path / "termination-log").read_text()
    assert said.startswith(
        f"error: cannot point alias 'prod' of team-b.nothing at version 1 in MLflow at "
        f"{mlflow_tracking}: RestException"
    )
