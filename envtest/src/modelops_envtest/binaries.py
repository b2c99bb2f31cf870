"""Finds or builds the control-plane binaries: etcd, kube-apiserver, kube-controller-manager.

Release buckets are out of reach, so the binaries are built from source through the Go module
proxy (the Go module in `envtest/go/` pins the Kubernetes release) and cached per version.
`KUBEBUILDER_ASSETS`, the envtest convention, points at binaries a user already has.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.34.4"

GO_MODULE_DIR = Path(__file__).resolve().parents[2] / "go"

# binary name -> Go package that builds it
GO_PACKAGES = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
}


class BinariesUnavailable(RuntimeError):
    """The control plane cannot be provisioned on this machine (and why)."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


def cache_root() -> Path:
    configured = os.environ.get("MODELOPS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "modelops"


def cache_dir() -> Path:
    return cache_root() / f"k8s-{KUBERNETES_VERSION}"


def _version_ldflags() -> str:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    version_pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s -w",
            f"-X {version_pkg}.gitVersion=v{KUBERNETES_VERSION}",
            f"-X {version_pkg}.gitMajor={major}",
            f"-X {version_pkg}.gitMinor={minor}",
            f"-X {version_pkg}.gitTreeState=clean",
        ]
    )


def _is_complete(directory: Path, names: list[str]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in names)


def build(target: Path | None = None) -> Path:
    """Build every binary into `target` (the version's cache dir) unless it is already there."""
    target = target or cache_dir()
    if _is_complete(target, list(GO_PACKAGES)):
        return target
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable(
            "building the control plane needs Go (https://go.dev/dl/) on PATH, "
            "or KUBEBUILDER_ASSETS pointing at envtest binaries"
        )
    with staged(target) as staging:
        for name, package in GO_PACKAGES.items():
            subprocess.run(
                [
                    go,
                    "build",
                    "-trimpath",
                    f"-ldflags={_version_ldflags()}",
                    "-o",
                    str(staging / name),
                    package,
                ],
                cwd=GO_MODULE_DIR,
                check=True,
                env={**os.environ, "GOFLAGS": "-mod=readonly"},
            )
    return target


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A sibling temp dir to build into, renamed to `target` only when the block succeeds, so an
    interrupted build never looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def locate() -> Binaries:
    """The binaries to run: KUBEBUILDER_ASSETS first, then the cache (building it if empty)."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    built: Path | None = None
    found: dict[str, Path] = {}
    for name in GO_PACKAGES:
        if assets and os.access(Path(assets) / name, os.X_OK):
            found[name] = Path(assets) / name
        else:
            # envtest's own asset bundles carry no controller-manager: build what is missing.
            built = built or build()
            found[name] = built / name
    return Binaries(
        etcd=found["etcd"],
        kube_apiserver=found["kube-apiserver"],
        kube_controller_manager=found["kube-controller-manager"],
    )
