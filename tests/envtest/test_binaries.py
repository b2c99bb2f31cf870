"""The build cache: a build that fails half-way never leaves a directory that looks complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelops_envtest.binaries import staged


def test_a_finished_build_replaces_the_cached_one(tmp_path: Path) -> None:
    target = tmp_path / "k8s"
    target.mkdir()
    (target / "old").write_text("stale")
    with staged(target) as staging:
        (staging / "kube-apiserver").write_text("new")
    assert sorted(path.name for path in target.iterdir()) == ["kube-apiserver"]
    assert [path.name for path in tmp_path.iterdir()] == ["k8s"]


def test_an_interrupted_build_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "k8s"
    target.mkdir()
    (target / "etcd").write_text("good")
    with pytest.raises(RuntimeError), staged(target) as staging:
        (staging / "etcd").write_text("half")
        raise RuntimeError("go build failed")
    assert (target / "etcd").read_text() == "good"
    assert [path.name for path in tmp_path.iterdir()] == ["k8s"]
