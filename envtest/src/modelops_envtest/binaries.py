"""Finds or builds the Kubernetes binaries: the test control plane (etcd, kube-apiserver,
kube-controller-manager) and the rest a kind node needs (kubelet, kubeadm, kubectl,
kube-scheduler, kube-proxy).

Release buckets are out of reach, so the binaries are built from source through the Go module
proxy (the Go module in `envtest/go/` pins the Kubernetes release) and cached per version. Every
binary is built with the same settings, so the node build reuses the control plane's Go cache.
`KUBEBUILDER_ASSETS`, the envtest convention, points at control-plane binaries a user already has.
"""

from __future__ import annotations

import contextlib
import os
import re
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
NODE_GO_PACKAGES = {
    name: f"k8s.io/kubernetes/cmd/{name}"
    for name in ("kubelet", "kubeadm", "kubectl", "kube-scheduler", "kube-proxy")
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


def node_cache_dir() -> Path:
    return cache_root() / f"k8s-{KUBERNETES_VERSION}-node"


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


def build(target: Path | None = None, packages: dict[str, str] = GO_PACKAGES) -> Path:
    """Build every binary of `packages` into `target` (the version's cache dir) unless it is
    already there."""
    target = target or cache_dir()
    if _is_complete(target, list(packages)):
        return target
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable(
            "building the Kubernetes binaries needs Go (https://go.dev/dl/) on PATH, "
            "or KUBEBUILDER_ASSETS pointing at envtest binaries"
        )
    with staged(target) as staging:
        # One `go build` for all of them: the linker steps run in parallel.
        subprocess.run(
            [
                go,
                "build",
                "-trimpath",
                f"-ldflags={_version_ldflags()}",
                "-o",
                f"{staging}/",
                *packages.values(),
            ],
            cwd=GO_MODULE_DIR,
            check=True,
            env={**os.environ, "GOFLAGS": "-mod=readonly"},
        )
        for name, package in packages.items():
            built = staging / _go_binary_name(package)
            if built.name != name:
                built.rename(staging / name)
    return target


def _go_binary_name(package: str) -> str:
    """The file `go build -o DIR/` writes: the last path element that is not a major version."""
    *rest, last = package.split("/")
    return rest[-1] if re.fullmatch(r"v[0-9]+", last) else last


def build_node() -> Path:
    """kubelet, kubeadm, kubectl, kube-scheduler and kube-proxy for the kind node image."""
    return build(node_cache_dir(), NODE_GO_PACKAGES)


def go_tool(name: str, package: str, version: str, tags: str = "") -> Path:
    """A Go tool `go install`ed from the module proxy once, into the cache folder that
    images/lib.sh's go_tool uses too (go-tools/NAME-VERSION/NAME)."""
    binary = cache_root() / "go-tools" / f"{name}-{version}" / name
    if os.access(binary, os.X_OK):
        return binary
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable(f"building {name} needs Go on PATH")
    with staged(binary.parent) as staging:
        done = subprocess.run(
            [go, "install", "-trimpath", "-ldflags=-s -w", f"-tags={tags}", f"{package}@{version}"],
            env={**os.environ, "GOBIN": str(staging), "GOFLAGS": "-buildvcs=false"},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BinariesUnavailable(f"go install {package}@{version} failed:\n{done.stderr}")
        built = staging / _go_binary_name(package)
        if built.name != name:
            built.rename(staging / name)
    return binary


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
