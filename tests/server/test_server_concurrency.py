"""A model scikit-learn must run itself (not compiled) never holds up the server: its batch runs
in a worker thread, and the health probes answer meanwhile."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Artifact, Process

FEATURES = 64
BATCH_ROWS = 10_000


@pytest.fixture(scope="module")
def wide_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 rows of 64 features: a brute-force KNN takes seconds over a 10,000-row batch."""
    rows = np.random.default_rng(7).normal(size=(20_000, FEATURES)).round(3)
    labels = np.where(rows[:, 0] + rows[:, 1] > 0, "up", "down")
    path = tmp_path_factory.mktemp("wide") / "wide.csv"
    header = ",".join(f"f{i}" for i in range(FEATURES)) + ",label\n"
    body = "".join(
        ",".join(map(str, row)) + f",{label}\n" for row, label in zip(rows, labels, strict=True)
    )
    path.write_text(header + body)
    return path


def test_probes_answer_while_a_large_batch_is_predicted(
    trained: Callable[..., Artifact],
    serve_process: Callable[[Artifact], Process],
    wide_csv: Path,
) -> None:
    knn = trained("KNeighborsClassifier", csv=wide_csv, algorithm="brute")
    url = serve_process(knn).url
    batch = np.random.default_rng(8).normal(size=(BATCH_ROWS, FEATURES)).round(3).tolist()
    answered: dict[str, object] = {}

    def predict() -> None:
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"instances": batch}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            answered["status"] = response.status
            answered["predictions"] = json.loads(response.read())["predictions"]

    predicting = threading.Thread(target=predict)
    predicting.start()
    probes_during_batch = 0
    while predicting.is_alive():
        for probe in ("/v2/health/live", "/v2/health/ready"):
            with urllib.request.urlopen(url + probe, timeout=300) as response:
                assert response.status == 200
        if predicting.is_alive():
            probes_during_batch += 1
        time.sleep(0.05)
    predicting.join()

    assert answered["status"] == 200
    assert len(answered["predictions"]) == BATCH_ROWS  # type: ignore[arg-type]
    # On the event loop, the probes would have waited for the whole batch: at most one pair.
    assert probes_during_batch >= 5, probes_during_batch
