"""What the harness's local services have in common: each is started by `with` (or `start()`)
and stopped on leaving the block, or as soon as starting fails part-way, so nothing it had
already started outlives it; their processes end politely, then firmly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self

from modelops_envtest.waiting import wait_until

_PR_SET_PDEATHSIG = 1


class Service:
    """Subclasses start everything in `_start()` and stop whatever did start in `stop()`."""

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def end(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace_seconds`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(
    process: subprocess.Popen[bytes], url: str, name: str, log_tail: Callable[[], str]
) -> bool:
    """Whether `url` answers 2xx; fails, with the log's tail, once the process has exited."""
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited:\n{log_tail()}")
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    # A SIGKILLed test run must not leave etcd and the apiserver behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@contextlib.contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    health_url: str,
    log_file: Path,
    environment: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[None]:
    """`command` running (its output in `log_file`) from the moment `health_url` answers until
    the block is left; ended with it, and with the test run if that is killed."""
    with log_file.open("w") as log:
        process = subprocess.Popen(
            list(command),
            env={**os.environ, **(environment or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            wait_until(
                lambda: answers(process, health_url, name, lambda: log_file.read_text()[-3000:]),
                timeout=timeout,
                what=f"{name} to answer its health check",
            )
            yield
        finally:
            end(process, grace_seconds=10)
