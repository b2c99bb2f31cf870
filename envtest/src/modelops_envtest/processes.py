"""What the harness's local services have in common: each is started by `with` (or `start()`)
and stopped on leaving the block, or as soon as starting fails part-way, so nothing it had
already started outlives it; their processes end politely, then firmly."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable
from typing import Self


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
