"""Argo CD's own Application and AppProject CRDs, for the tests that validate our manifests.

They are Argo CD's files, not ours, so the repository holds no copy: a folder of them beside the
repository (`../shared/argocd/`) is used when present; otherwise they are read from Argo CD's Go
module at the pinned release, fetched through the Go module proxy (the same route as the control
plane's sources), checked against a pinned digest and cached like the binaries.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path

from modelops_envtest.binaries import cache_root, staged

ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
ARGOCD_VERSION = "v3.6.0"
# sha256 of the module zip the Go proxy serves (the go command verified it against the sum
# database when this was pinned).
ARGOCD_MODULE_ZIP_SHA256 = "21595040aa5728f76e91999eff06ff6bf8cc812e269838504d01cd96e5c2d425"
CRD_FILES = ("application-crd.yaml", "appproject-crd.yaml")


class ArgoCDCRDsUnavailable(RuntimeError):
    """Neither a folder of the CRDs nor the Go module proxy is at hand (and why)."""


def crd_files(beside_repository: Path) -> list[Path]:
    """The CRD files: from `beside_repository` when it has them all, else from the cache."""
    if all((beside_repository / name).exists() for name in CRD_FILES):
        return [beside_repository / name for name in CRD_FILES]
    cached = cache_root() / f"argocd-{ARGOCD_VERSION}"
    if not all((cached / name).exists() for name in CRD_FILES):
        _extract_from_module(cached)
    return [cached / name for name in CRD_FILES]


def _extract_from_module(target: Path) -> None:
    url = f"{_module_proxy()}/{ARGOCD_MODULE}/@v/{ARGOCD_VERSION}.zip"
    with urllib.request.urlopen(url, timeout=300) as response:
        archive = response.read()
    digest = hashlib.sha256(archive).hexdigest()
    if digest != ARGOCD_MODULE_ZIP_SHA256:
        raise ArgoCDCRDsUnavailable(
            f"{url} has sha256 {digest}, expected {ARGOCD_MODULE_ZIP_SHA256}"
        )
    with zipfile.ZipFile(io.BytesIO(archive)) as module, staged(target) as staging:
        for name in CRD_FILES:
            member = f"{ARGOCD_MODULE}@{ARGOCD_VERSION}/manifests/crds/{name}"
            (staging / name).write_bytes(module.read(member))


def _module_proxy() -> str:
    go = shutil.which("go")
    if go is None:
        raise ArgoCDCRDsUnavailable("fetching Argo CD's CRDs needs Go on PATH (for GOPROXY)")
    proxies = subprocess.run(
        [go, "env", "GOPROXY"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # GOPROXY is a list separated by "," or "|"; "direct" and "off" are not proxies.
    for proxy in proxies.replace("|", ",").split(","):
        if proxy not in ("", "direct", "off"):
            return proxy.rstrip("/")
    raise ArgoCDCRDsUnavailable(f"GOPROXY ({proxies!r}) names no module proxy")
