"""The Prometheus binaries the tests run, provisioned on first use.

- `prometheus`: Debian's `prometheus` package, installed with apt-get when not on PATH.
- `promtool`: Debian builds Prometheus without Kubernetes service discovery, so its promtool
  rejects every `kubernetes_sd_configs`. promtool is built instead from the upstream Go module,
  through the Go module proxy, with only Kubernetes discovery compiled in, and cached like the
  control-plane binaries.

`python -m modelops_envtest.prometheus_tools` provisions both ahead of a test run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from modelops_envtest.binaries import cache_root, staged

DEBIAN_PACKAGE = "prometheus"
# Another apt run (a parallel session, unattended upgrades) holds the lock for a while at most.
APT_GET = ("apt-get", "-o", "DPkg::Lock::Timeout=600")
PROMTOOL_PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"
# Prometheus's Go module is versioned v0.<100 * major + minor>.<patch>: this is Prometheus 3.16.0.
PROMTOOL_VERSION = "v0.316.0"
PROMTOOL_BUILD_TAGS = "remove_all_sd,enable_kubernetes_sd"


class PrometheusUnavailable(RuntimeError):
    """A binary is missing and there is no tool here to provide it."""


def prometheus() -> Path:
    found = shutil.which("prometheus")
    if found is None:
        _apt_install()
        found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError(f"apt-get installed {DEBIAN_PACKAGE}, yet prometheus is not on PATH")
    return Path(found)


def promtool() -> Path:
    directory = cache_root() / f"promtool-{PROMTOOL_VERSION}"
    binary = directory / "promtool"
    if not os.access(binary, os.X_OK):
        _go_install_promtool(directory)
    return binary


def _apt_install() -> None:
    if shutil.which("apt-get") is None:
        raise PrometheusUnavailable(
            "prometheus is not on PATH and there is no apt-get to install Debian's "
            f"{DEBIAN_PACKAGE} package: install Prometheus to run these tests"
        )
    install = [*APT_GET, "install", "-y", "--no-install-recommends", DEBIAN_PACKAGE]
    if _run(install, check=False).returncode != 0:
        # A fresh image has no package lists yet.
        _run([*APT_GET, "update"])
        _run(install)
    # The package's postinst may have started a system Prometheus; the tests run their own.
    if shutil.which("service") is not None:
        _run(["service", DEBIAN_PACKAGE, "stop"], check=False)


def _go_install_promtool(directory: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise PrometheusUnavailable(
            "building promtool with Kubernetes discovery needs Go on PATH "
            "(Debian's promtool cannot check kubernetes_sd_configs)"
        )
    with staged(directory) as staging:
        _run(
            [
                go,
                "install",
                "-trimpath",
                f"-tags={PROMTOOL_BUILD_TAGS}",
                f"{PROMTOOL_PACKAGE}@{PROMTOOL_VERSION}",
            ],
            env={"GOBIN": str(staging)},
        )


def _run(
    command: list[str], check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"} | (env or {}),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr}")
    return result


if __name__ == "__main__":
    print(prometheus(), promtool())
