"""Prints the fleet dashboard, which is deployed once rather than per model:

    python -m modelops_operator.monitoring.fleet_dashboard > deploy/base/monitoring/fleet-dashboard.json

A test checks that the committed file is what this prints.
"""

from __future__ import annotations

import json
import sys

from modelops_operator.monitoring.grafana import build_fleet_dashboard


def render() -> str:
    return json.dumps(build_fleet_dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
