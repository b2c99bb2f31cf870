"""Soak: random valid changes to many models on the test control plane while the operator is
killed now and then, every invariant checked after each burst (modelops_envtest.soak says
which).

    uv run --locked python bench/operator/soak.py [--models 50] [--minutes 30] [--seed N]

Prints each violation as it is found and a summary line at the end; exits 1 on any violation.
Not a test: tests/operator/test_soak.py runs a 3-minute soak of a few models in the suite.
"""

from __future__ import annotations

import argparse
import sys

from modelops_envtest.controlplane import ControlPlane
from modelops_envtest.soak import soak

# The controller-manager's client limits of Kubernetes' own scalability tests: at its defaults
# its Job and ReplicaSet controllers, not the operator, set the pace of 50 models' rollouts.
CONTROLLER_MANAGER_FLAGS = ("--kube-api-qps=100", "--kube-api-burst=100")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with ControlPlane(controller_manager_flags=CONTROLLER_MANAGER_FLAGS) as control_plane:
        report = soak(control_plane, args.models, args.minutes, args.seed)
    print(report.summary_line())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
