"""Commands the tests run that Debian packages: installed with apt-get on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Another apt run (a parallel session, unattended upgrades) holds the lock for a while at most.
APT_GET = ("apt-get", "-o", "DPkg::Lock::Timeout=600")


class PackageUnavailable(RuntimeError):
    """A command is missing and there is no apt-get to install it."""


def command(name: str, package: str) -> Path:
    """The command on PATH, installing Debian's `package` first when it is missing. A service the
    package's postinst starts is stopped again: the tests run their own."""
    found = shutil.which(name)
    if found is None:
        _install(package, needed_for=name)
        if shutil.which("service") is not None:
            run(["service", package, "stop"], check=False)
        found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"apt-get installed {package}, yet {name} is not on PATH")
    return Path(found)


def _install(package: str, needed_for: str) -> None:
    if shutil.which("apt-get") is None:
        raise PackageUnavailable(
            f"{needed_for} is not on PATH and there is no apt-get to install Debian's "
            f"{package} package: install it to run these tests"
        )
    install = [*APT_GET, "install", "-y", "--no-install-recommends", package]
    if run(install, check=False).returncode != 0:
        # A fresh image has no package lists yet.
        run([*APT_GET, "update"])
        run(install)


def run(
    argv: list[str], check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"} | (env or {}),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr}")
    return result
