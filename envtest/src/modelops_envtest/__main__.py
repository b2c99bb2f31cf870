"""`python -m modelops_envtest build` builds the binaries; `... up` runs a control plane until
interrupted and prints how to reach it (for demos, benchmarks and poking around)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from modelops_envtest import binaries, demo
from modelops_envtest.controlplane import ControlPlane


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelops_envtest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="build and cache etcd, kube-apiserver, kube-controller-manager"
    )
    build.add_argument(
        "--node",
        action="store_true",
        help="also kubelet, kubeadm, kubectl, kube-scheduler, kube-proxy (for the kind node)",
    )
    up = commands.add_parser("up", help="start a control plane and keep it running")
    up.add_argument("--workdir", type=Path, help="keep state here (default: a temp dir)")
    up.add_argument("--kubeconfig-out", type=Path, help="also copy the kubeconfig here")
    commands.add_parser(
        "demo", help="the README's main job (see modelops_envtest.demo)", add_help=False
    )
    args, rest = parser.parse_known_args(argv)

    if args.command == "demo":
        return demo.main(rest)

    if args.command == "build":
        started = time.monotonic()
        target = binaries.build()
        print(f"control plane v{binaries.KUBERNETES_VERSION} in {target}")
        if args.node:
            print(f"node binaries v{binaries.KUBERNETES_VERSION} in {binaries.build_node()}")
        print(f"({time.monotonic() - started:.1f}s)")
        return 0

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    with ControlPlane(workdir=args.workdir) as plane:
        if args.kubeconfig_out:
            args.kubeconfig_out.write_text(plane.kubeconfig.read_text())
        print(f"control plane ready in {time.monotonic() - started:.1f}s at {plane.url}")
        print(f"export KUBECONFIG={args.kubeconfig_out or plane.kubeconfig}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
