"""The Prometheus binaries the tests run, provisioned on first use.

- `prometheus`: Debian's `prometheus` package, installed with apt-get when not on PATH.
- `prometheus_release`: the Prometheus of deploy/base's image (the kind build's binary, same
  module, version, build tags and cache folder), for what the Debian one is too old to run.
- `promtool`: Debian builds Prometheus without Kubernetes service discovery, so its promtool
  rejects every `kubernetes_sd_configs`. promtool is built instead from the upstream Go module,
  through the Go module proxy, with only Kubernetes discovery compiled in, and cached like the
  control-plane binaries.

`python -m modelops_envtest.prometheus_tools` provisions both ahead of a test run.
"""

from __future__ import annotations

from pathlib import Path

from modelops_envtest import debian
from modelops_envtest.binaries import BinariesUnavailable, go_tool

PROMETHEUS_PACKAGE = "github.com/prometheus/prometheus/cmd/prometheus"
PROMTOOL_PACKAGE = "github.com/prometheus/prometheus/cmd/promtool"
# Prometheus's Go module is versioned v0.<100 * major + minor>.<patch>: this is Prometheus 3.16.0.
PROMTOOL_VERSION = "v0.316.0"
PROMTOOL_BUILD_TAGS = "remove_all_sd,enable_kubernetes_sd"


class PrometheusUnavailable(RuntimeError):
    """A binary is missing and there is no tool here to provide it."""


def prometheus() -> Path:
    try:
        return debian.command("prometheus", package="prometheus")
    except debian.PackageUnavailable as error:
        raise PrometheusUnavailable(str(error)) from error


def prometheus_release() -> Path:
    try:
        return go_tool("prometheus", PROMETHEUS_PACKAGE, PROMTOOL_VERSION, tags=PROMTOOL_BUILD_TAGS)
    except BinariesUnavailable as error:
        raise PrometheusUnavailable(str(error)) from error


def promtool() -> Path:
    try:
        return go_tool("promtool", PROMTOOL_PACKAGE, PROMTOOL_VERSION, tags=PROMTOOL_BUILD_TAGS)
    except BinariesUnavailable as error:
        raise PrometheusUnavailable(
            f"{error} (Debian's promtool cannot check kubernetes_sd_configs)"
        ) from error


if __name__ == "__main__":
    print(prometheus(), promtool())
