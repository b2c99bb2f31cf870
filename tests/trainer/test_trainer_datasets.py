"""Every dataset source, the encoding of mixed CSV data, and each bad-data error."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from modelops_trainer import TrainingError, train

BUILTIN = {
    # name: (feature count, classes or None for regression)
    "iris": (4, ["setosa", "versicolor", "virginica"]),
    "wine": (13, ["class_0", "class_1", "class_2"]),
    "breast_cancer": (30, ["benign", "malignant"]),
    "digits": (64, [str(digit) for digit in range(10)]),
    "diabetes": (10, None),
}


def _artifact(summary: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    directory = Path(summary["artifactPath"])
    metadata = json.loads((directory / "metadata.json").read_text())
    return metadata, joblib.load(directory / "model.joblib")


def _csv_spec(location: dict[str, str], target: str, estimator: str) -> dict[str, Any]:
    fast = {"max_iter": 10} if estimator.startswith("HistGradient") else {}
    return {
        "dataset": {"csv": location | {"targetColumn": target}},
        "estimator": estimator,
        "hyperparameters": fast,
    }


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_datasets(name: str, output_root: Path) -> None:
    feature_count, classes = BUILTIN[name]
    estimator = "RandomForestRegressor" if classes is None else "RandomForestClassifier"
    spec = {
        "dataset": {"builtin": name},
        "estimator": estimator,
        "hyperparameters": {"n_estimators": 5},
    }
    metadata, model = _artifact(train(spec, output_root, name))

    assert len(metadata["features"]) == feature_count == model.n_features_in_
    assert all(feature["type"] == "numeric" for feature in metadata["features"])
    assert metadata["target"] == {"name": "target", "classes": classes}
    if classes is not None:
        # Labels are the class names, so predictions read as names.
        assert [str(c) for c in model.classes_] == classes


def test_numeric_csv_from_a_path_saves_the_bare_estimator(
    write_csv: Callable[..., Path], numeric_csv: str, output_root: Path
) -> None:
    path = write_csv(numeric_csv)
    metadata, model = _artifact(
        train(_csv_spec({"path": str(path)}, "y", "Ridge"), output_root, "m")
    )
    assert type(model).__name__ == "Ridge"
    assert metadata["features"] == [
        {"name": "x1", "type": "numeric", "min": 0.0, "max": 10.0},
        {"name": "x2", "type": "numeric", "min": 0.0, "max": 12.0},
    ]
    assert metadata["target"] == {"name": "y", "classes": None}
    assert metadata["metrics"]["r2"] > 0.95


def test_mixed_csv_is_encoded_and_its_gaps_filled_out_loud(
    write_csv: Callable[..., Path],
    mixed_csv: str,
    output_root: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_csv(mixed_csv)
    with caplog.at_level(logging.INFO, logger="modelops_trainer"):
        summary = train(
            _csv_spec({"path": str(path)}, "label", "RandomForestClassifier"), output_root, "m"
        )
    metadata, model = _artifact(summary)

    assert metadata["features"] == [
        {"name": "size", "type": "numeric", "min": 1.0, "max": 10.9},
        {"name": "colour", "type": "categorical", "categories": ["blue", "green", "red"]},
        # The range of what is there: the gaps are not zeros.
        {"name": "weight", "type": "numeric", "min": 2.0, "max": 27.8},
        {"name": "shape", "type": "categorical", "categories": ["round", "square"]},
    ]
    assert metadata["target"]["classes"] == ["big", "small"]
    assert summary["metrics"]["accuracy"] >= 0.9
    assert "missing value(s) in feature column(s) 'weight', 'shape'" in caplog.text
    # The model takes raw rows in `features` order, gaps and unseen categories included.
    rows = np.array(
        [[9.5, "red", 20.0, "round"], [1.2, "blue", None, None], [2.0, "purple", 4.0, "oval"]],
        dtype=object,
    )
    assert list(model.predict(rows)[:2]) == ["big", "small"]
    assert model.predict_proba(rows).shape == (3, 2)


def test_csv_from_a_url_matches_the_same_file_from_a_path(
    web_root: tuple[Path, str],
    write_csv: Callable[..., Path],
    mixed_csv: str,
    output_root: Path,
) -> None:
    directory, base_url = web_root
    (directory / "train.csv").write_text(mixed_csv)
    path = write_csv(mixed_csv)
    estimator = "HistGradientBoostingClassifier"
    by_url = train(
        _csv_spec({"url": f"{base_url}/train.csv"}, "label", estimator), output_root, "u"
    )
    by_path = train(_csv_spec({"path": str(path)}, "label", estimator), output_root, "p")

    assert _artifact(by_url)[0]["dataFingerprint"] == _artifact(by_path)[0]["dataFingerprint"]
    assert by_url["metrics"] == by_path["metrics"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


NUMERIC = "a,b,y\n" + "".join(f"{i},{i % 3},{i * 1.5}\n" for i in range(20))
LABELS = "a,b,label\n" + "".join(f"{i},{i % 3},{'xyz'[i % 3]}\n" for i in range(20))


@pytest.mark.parametrize(
    ("csv", "target", "estimator", "expected"),
    [
        (NUMERIC, "Y", "Ridge", "target column 'Y' is not in CSV"),
        (NUMERIC, "Y", "Ridge", "did you mean 'y'? its columns are a, b, y"),
        ("", "y", "Ridge", "is empty: it needs a header row and data rows"),
        ("a,b,y\n", "y", "Ridge", "has a header but no data rows"),
        ("y\n1\n2\n", "y", "Ridge", "has only the target column 'y'"),
        ("a,b,y\n,,1\n,,2\n,,3\n", "y", "Ridge", "has no feature values at all"),
        ("a,b,y\n1,,1\n2,,2\n3,,3\n", "y", "Ridge", "feature column(s) 'b' of CSV"),
        ("a,y\n1,\n2,\n", "y", "Ridge", "target column 'y' of CSV"),
        ("a,y\n1,1\n2,\n3,3\n4,\n", "y", "Ridge", "is empty in 2 row(s) (data rows 2, 4"),
        ('a,y\n1,"2\n', "y", "Ridge", "is not a readable UTF-8 CSV file"),
        (LABELS, "label", "Ridge", "is not numeric (it holds values such as 'x') but Ridge"),
        (NUMERIC, "y", "SVC", "holds continuous numbers but SVC predicts classes"),
        (
            LABELS + "3,0,w\n",
            "label",
            "SVC",
            "class(es) 'w' have a single row, too few for a stratified split",
        ),
        ("a,label\n1,x\n2,x\n3,x\n", "label", "SVC", "the target has a single class ('x')"),
        (
            "a,label\n1,x\n2,y\n3,z\n4,x\n5,y\n6,z\n",
            "label",
            "SVC",
            "cannot split 6 rows with testSize 0.2: The test_size = 2",
        ),
    ],
)
def test_bad_csv_data_is_refused_with_a_fix(
    csv: str,
    target: str,
    estimator: str,
    expected: str,
    write_csv: Callable[..., Path],
    output_root: Path,
) -> None:
    path = write_csv(csv)
    with pytest.raises(TrainingError) as error:
        train(_csv_spec({"path": str(path)}, target, estimator), output_root, "m")
    assert expected in str(error.value)
    assert not output_root.exists()


def test_too_few_held_out_rows_are_refused(
    write_csv: Callable[..., Path], output_root: Path
) -> None:
    path = write_csv("a,y\n" + "".join(f"{i},{i}\n" for i in range(6)))
    spec = _csv_spec({"path": str(path)}, "y", "Ridge") | {"testSize": 0.1}
    with pytest.raises(TrainingError, match="holds out 1 of 6 rows, too few"):
        train(spec, output_root, "m")


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"builtin": "mnist"}, "unknown builtin dataset 'mnist': choose one of iris, wine"),
        (
            {"csv": {"path": "/nonexistent/train.csv", "targetColumn": "y"}},
            "cannot read CSV file /nonexistent/train.csv: No such file or directory; check the "
            "path and that its volume is mounted",
        ),
        ({"csv": {"url": "{web}/missing.csv", "targetColumn": "y"}}, "HTTP 404"),
        (
            {"csv": {"url": "http://127.0.0.1:{closed}/x.csv", "targetColumn": "y"}},
            "Connection refused; check the URL and that the training pod can reach it",
        ),
    ],
)
def test_unknown_or_unreachable_datasets_are_refused(
    dataset: dict[str, Any], expected: str, web_root: tuple[Path, str], output_root: Path
) -> None:
    text = json.dumps(dataset).replace("{web}", web_root[1])
    text = text.replace("{closed}", str(_closed_port()))
    spec = {"dataset": json.loads(text), "estimator": "RandomForestClassifier"}
    with pytest.raises(TrainingError) as error:
        train(spec, output_root, "m")
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("builtin", "estimator", "expected"),
    [
        ("diabetes", "RandomForestClassifier", "choose a regressor, such as RandomForestRegressor"),
        ("iris", "Ridge", "is a classification dataset but Ridge is a regressor"),
    ],
)
def test_a_builtin_dataset_needs_the_matching_kind_of_estimator(
    builtin: str, estimator: str, expected: str, output_root: Path
) -> None:
    with pytest.raises(TrainingError, match=expected):
        train({"dataset": {"builtin": builtin}, "estimator": estimator}, output_root, "m")
