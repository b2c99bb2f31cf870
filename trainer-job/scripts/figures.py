"""Training time and artifact size for the bundled datasets, as a Markdown table.

    uv run python trainer-job/scripts/figures.py [--repeat 3]

Each row is one `train()` call end to end (load, fingerprint, split, fit, score, write), the
median of --repeat runs into fresh directories; interpreter start-up and imports are measured
once, separately, because the Job pays them once per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelops_trainer import train
from sklearn import datasets

DATASETS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "digits": "classification",
    "diabetes": "regression",
}
ESTIMATORS = {
    "classification": [
        ("RandomForestClassifier", {"n_estimators": 100}),
        ("HistGradientBoostingClassifier", {}),
        ("LogisticRegression", {"max_iter": 5000}),
    ],
    "regression": [
        ("RandomForestRegressor", {"n_estimators": 100}),
        ("HistGradientBoostingRegressor", {}),
        ("Ridge", {}),
    ],
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
HEADLINE = {"classification": "accuracy", "regression": "r2"}


def measure(spec: dict[str, Any], repeat: int) -> tuple[float, int, dict[str, Any]]:
    """Median seconds of `train()`, the model file's size, and the metadata."""
    seconds = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            directory = Path(train(spec, Path(root), "figures")["artifactPath"])
            seconds.append(time.perf_counter() - started)
            size = (directory / "model.joblib").stat().st_size
            metadata = json.loads((directory / "metadata.json").read_text())
    return statistics.median(seconds), size, metadata


def import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import modelops_trainer"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median)")
    repeat = parser.parse_args().repeat
    print("| dataset | rows x features | estimator | train() s | model.joblib | held-out |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for dataset, task in DATASETS.items():
        for estimator, hyperparameters in ESTIMATORS[task]:
            spec = {
                "dataset": {"builtin": dataset},
                "estimator": estimator,
                "hyperparameters": hyperparameters,
            }
            seconds, size, metadata = measure(spec, repeat)
            rows = getattr(datasets, f"load_{dataset}")().data.shape[0]
            metric = HEADLINE[task]
            print(
                f"| {dataset} | {rows} x {len(metadata['features'])} | {estimator} "
                f"{_brief(hyperparameters)} | {seconds:.2f} | {_kib(size)} | "
                f"{metric} {metadata['metrics'][metric]:.3f} |"
            )
    print(f"\nPython start-up + `import modelops_trainer`: {import_seconds():.1f} s")
    threads = {name: os.environ.get(name, "unset") for name in THREAD_VARIABLES}
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}, {threads}")


def _brief(hyperparameters: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in hyperparameters.items())


def _kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"


if __name__ == "__main__":
    main()
