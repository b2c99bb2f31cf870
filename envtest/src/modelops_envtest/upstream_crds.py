"""Other projects' CRDs that our manifests and children must satisfy: Argo CD's Application and
AppProject, the Prometheus Operator's ServiceMonitor.

They are their projects' files, not ours, so the repository holds no copy. Each is read from its
project's Go module at a pinned release, fetched through the Go module proxy (the same route as
the control plane's sources), checked against a pinned digest and cached like the binaries. A
folder already holding the files (Argo CD's beside the repository, in `../shared/argocd/`) is
used as it is.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modelops_envtest.binaries import cache_root, staged


class UpstreamCRDsUnavailable(RuntimeError):
    """Neither a folder of the CRDs nor the Go module proxy is at hand (and why)."""


@dataclass(frozen=True)
class ModuleCRDs:
    project: str
    module: str
    version: str
    # sha256 of the module zip the Go proxy serves (the go command verified it against the
    # checksum database when it was pinned).
    zip_sha256: str
    # file name -> its path inside the module
    files: dict[str, str]

    def paths(self, beside_repository: Path | None = None) -> list[Path]:
        """The CRD files: from `beside_repository` when it has them all, else from the cache."""
        if beside_repository is not None and all(
            (beside_repository / name).exists() for name in self.files
        ):
            return [beside_repository / name for name in self.files]
        cached = cache_root() / "crds" / f"{self.project}-{self.version}"
        if not all((cached / name).exists() for name in self.files):
            self._extract(cached)
        return [cached / name for name in self.files]

    def _extract(self, target: Path) -> None:
        url = f"{_module_proxy()}/{self.module}/@v/{self.version}.zip"
        with urllib.request.urlopen(url, timeout=300) as response:
            archive = response.read()
        digest = hashlib.sha256(archive).hexdigest()
        if digest != self.zip_sha256:
            raise UpstreamCRDsUnavailable(f"{url} has sha256 {digest}, expected {self.zip_sha256}")
        with zipfile.ZipFile(io.BytesIO(archive)) as module, staged(target) as staging:
            for name, inside in self.files.items():
                (staging / name).write_bytes(module.read(f"{self.module}@{self.version}/{inside}"))


ARGOCD = ModuleCRDs(
    project="argo-cd",
    module="github.com/argoproj/argo-cd/v3",
    version="v3.6.0",
    zip_sha256="21595040aa5728f76e91999eff06ff6bf8cc812e269838504d01cd96e5c2d425",
    files={
        "application-crd.yaml": "manifests/crds/application-crd.yaml",
        "appproject-crd.yaml": "manifests/crds/appproject-crd.yaml",
    },
)
PROMETHEUS_OPERATOR = ModuleCRDs(
    project="prometheus-operator",
    module="github.com/prometheus-operator/prometheus-operator",
    version="v0.85.0",
    zip_sha256="0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1",
    files={
        "monitoring.coreos.com_servicemonitors.yaml": (
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
        ),
    },
)


def _module_proxy() -> str:
    go = shutil.which("go")
    if go is None:
        raise UpstreamCRDsUnavailable("fetching upstream CRDs needs Go on PATH (for GOPROXY)")
    proxies = subprocess.run(
        [go, "env", "GOPROXY"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # GOPROXY is a list separated by "," or "|"; "direct" and "off" are not proxies.
    for proxy in proxies.replace("|", ",").split(","):
        if proxy not in ("", "direct", "off"):
            return proxy.rstrip("/")
    raise UpstreamCRDsUnavailable(f"GOPROXY ({proxies!r}) names no module proxy")
