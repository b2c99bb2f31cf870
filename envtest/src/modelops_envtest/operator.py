"""The operator as a real process against a control plane, as its container runs it."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelops_operator.__main__ import PEERING_NAME

from modelops_envtest.controlplane import ControlPlane, free_port
from modelops_envtest.processes import answers
from modelops_envtest.waiting import wait_until

STOP_GRACE_SECONDS = 30
# The tests' resync period: what a test waits to see that something happens once, not per resync.
RESYNC_SECONDS = 5
REPOSITORY = Path(__file__).resolve().parents[3]


def install_prerequisites(control_plane: ControlPlane) -> None:
    """What the operator needs before it starts: the CRDs of `crds/` (ModelDeployment and kopf's
    peering), established. It makes the peering object it meets its other replicas at."""
    crds = str(REPOSITORY / "crds")
    control_plane.kubectl("apply", "--server-side", "-f", crds)
    control_plane.kubectl("wait", "--for=condition=Established", "-f", crds, "--timeout=60s")


class OperatorProcess:
    """`python -m modelops_operator`, as the operator's container runs it."""

    def __init__(self, control_plane: ControlPlane, **env: str) -> None:
        self.control_plane = control_plane
        self.health_port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="modelops-operator-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "MODELOPS_HEALTH_PORT": str(self.health_port),
            "MODELOPS_RESYNC_SECONDS": str(RESYNC_SECONDS),
            "MODELOPS_SWEEP_SECONDS": "5",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modelops_operator"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.healthy, timeout=60, what="the operator's /healthz")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        return answers(self.process, url, "operator", self.log_tail)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (kopf finishes its handlers), or SIGKILL when asked or when that is slow."""
        if self.process is None or self.process.poll() is not None:
            return
        if not kill:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_SECONDS)
                return
            except subprocess.TimeoutExpired:
                pass
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """This operator, one of every namespace, paused while the block runs, as a newer
        replica's start pauses it: a peer of the highest priority, written into the cluster's
        peering object by hand."""
        peer = f"paused-by-test-{secrets.token_hex(4)}"
        lastseen = datetime.datetime.now(datetime.UTC).isoformat()

        def patch(entry: dict[str, object] | None) -> None:
            self.control_plane.kubectl(
                "patch", "clusterkopfpeering", PEERING_NAME, "--type=merge",
                "-p", json.dumps({"status": {peer: entry}}),
            )  # fmt: skip

        patch({"priority": 2**62, "lifetime": 600, "lastseen": lastseen})
        try:
            wait_until(
                lambda: f"Pausing operations in favour of [<Peer {peer}" in self.log(),
                what="the operator to pause",
            )
            yield
        finally:
            patch(None)
            wait_until(
                lambda: (
                    self.log().rfind("Resuming operations after the pause")
                    > self.log().rfind(f"Pausing operations in favour of [<Peer {peer}")
                ),
                what="the operator to resume",
            )
