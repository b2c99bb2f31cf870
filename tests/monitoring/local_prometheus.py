"""A real Prometheus on loopback, and the corner of its HTTP API the tests read."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelops_envtest.waiting import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def _answers(url: str) -> bool:
    try:
        http_get(url)
    except OSError:
        return False
    return True


@contextmanager
def running_process(
    command: list[str | Path], log: Path, ready_url: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running until the block ends, once `ready_url` answers; its output in `log`."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{command[0]} exited early:\n{log.read_text()[-3000:]}")
            return _answers(ready_url)

        wait_until(ready, timeout=60, what=f"{ready_url} to answer")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_prometheus(
    prometheus: Path, config_text: str, workdir: Path, flags: list[str] | None = None
) -> Iterator[str]:
    """A Prometheus scraping what `config_text` says (its file: workdir/prometheus.yml), with
    `flags` besides where its files are; yields its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    url = f"http://127.0.0.1:{free_port()}"
    command: list[str | Path] = [
        prometheus,
        f"--config.file={config}",
        f"--web.listen-address={url.removeprefix('http://')}",
        f"--storage.tsdb.path={workdir / 'data'}",
        *(flags or []),
    ]
    with running_process(command, workdir / "prometheus.log", f"{url}/-/ready"):
        yield url


def instant_query(url: str, promql: str) -> list[dict[str, Any]]:
    """The result vector of an instant query (empty when nothing matches)."""
    body = json.loads(http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"))
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


# Prometheus's prefix for the labels Kubernetes discovery sets.
KUBERNETES_META = "__meta_kubernetes_"


def local_scrape_job(
    job: dict[str, Any], target: str, *, version: str | None = None
) -> dict[str, Any]:
    """`job` scraping `target` (host:port) instead of discovered pods, for servers run as local
    processes. Series keep their namespace and model labels; `version`, known to the caller
    rather than read from pod labels, is added when given."""
    static_config: dict[str, Any] = {"targets": [target]}
    if version is not None:
        static_config["labels"] = {"version": version}
    local = {key: value for key, value in job.items() if key != "kubernetes_sd_configs"}
    # Rules reading pod metadata would drop the target or blank its labels without pods.
    local["relabel_configs"] = [
        rule
        for rule in job.get("relabel_configs", [])
        if not any(source.startswith(KUBERNETES_META) for source in rule.get("source_labels", []))
    ]
    local["static_configs"] = [static_config]
    return local
