"""Benchmark: modelops-serve against Seldon's MLServer (scikit-learn runtime) and against the
ceiling of the HTTP stack itself, side by side.

    uv run python bench/server/compare_mlserver.py [--duration 10] [--rounds 1]

Trains a 100-tree RandomForestClassifier on iris with the trainer (`--estimator SVC` or
`KNeighborsClassifier`: a model served by scikit-learn itself) and serves it, on loopback and
one server at a time (so they never compete for the cores), five ways:

- modelops compiled: modelops-serve as the operator runs it (model.npz);
- modelops scikit-learn: modelops-serve with MODELOPS_COMPILE=false (scikit-learn's predict);
- MLServer defaults, and MLServer tuned (debug, gzip and the parallel inference pool off);
- ceiling: a bare ASGI app on the same uvicorn/uvloop/httptools stack that parses the same
  JSON and returns a fixed answer (ceiling.py), twice: with a one-row answer to every request,
  and with the very answers modelops compiled gave (so it sends the same bytes: for 100 rows,
  their labels and probabilities).

Each is loaded with `wrk` (Debian: `apt-get install -y wrk`) sending the same Open Inference
Protocol request: one row at concurrency 1, 8 and 32, and 100-row batches at concurrency 8.
Prints requests/s and p99 latency of each, modelops' share of the ceiling and its ratio to tuned
MLServer as Markdown tables (docs/inference-server.md keeps the last ones). Not a test: run it
on request, on a quiet machine, and compare runs.

MLServer 1.7 pins an older FastAPI, so it lives in its own virtualenv, made here under
~/.cache/modelops/mlserver-venv with the same scikit-learn, joblib and numpy as ours (so it
unpickles the same model), and uvloop<0.22: with uvloop 0.22 or newer its inference worker
crash-loops.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from modelops_trainer import train

MLSERVER_VENV = Path.home() / ".cache" / "modelops" / "mlserver-venv"
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
MODEL_NAME = "iris"
COMPILED = "modelops compiled"
SCIKIT_LEARN = "modelops scikit-learn path"
MLSERVER = "MLServer defaults"
MLSERVER_TUNED = "MLServer tuned"
CEILING = "ceiling: bare ASGI, one-row answer"
CEILING_SAME_ANSWERS = "ceiling: bare ASGI, modelops' answers"
# The hyperparameters of the estimators benchmarked; any other gets the trainer's defaults.
HYPERPARAMETERS = {"RandomForestClassifier": {"n_estimators": 100}}
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
# (label, rows per request, wrk connections)
SCENARIOS = [
    ("1 row, c=1", 1, 1),
    ("1 row, c=8", 1, 8),
    ("1 row, c=32", 1, 32),
    ("100 rows, c=8", 100, 8),
]


@dataclass(frozen=True)
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--estimator",
        default="RandomForestClassifier",
        help="the model served: RandomForestClassifier (compiled here) or, for the path "
        "scikit-learn serves itself, SVC or KNeighborsClassifier",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs per scenario; the median is kept"
    )
    parser.add_argument(
        "--ours-workers",
        type=int,
        default=1,
        help="uvicorn worker processes for modelops-serve (more than 1 is an experiment: "
        "each worker keeps its own /metrics)",
    )
    arguments = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    mlserver = ensure_mlserver_venv()
    # Kept afterwards: the servers' logs are there.
    root = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    spec = {
        "dataset": {"builtin": "iris"},
        "estimator": arguments.estimator,
        "hyperparameters": HYPERPARAMETERS.get(arguments.estimator, {}),
        "randomSeed": 42,
    }
    artifact = Path(train(spec, root / "models", MODEL_NAME)["artifactPath"])
    sizes = {rows for _, rows, _ in SCENARIOS}
    bodies = {rows: write_wrk_script(root, rows) for rows in sizes}
    answers = root / "answers.json"
    servers = {
        COMPILED: lambda port: start_ours(artifact, port, arguments.ours_workers),
        SCIKIT_LEARN: lambda port: start_ours(
            artifact, port, arguments.ours_workers, {"MODELOPS_COMPILE": "false"}
        ),
        MLSERVER: lambda port: start_mlserver(mlserver, artifact, root, port, tuned=False),
        MLSERVER_TUNED: lambda port: start_mlserver(mlserver, artifact, root, port, tuned=True),
        CEILING: lambda port: start_ceiling(port),
        # After modelops compiled, which wrote down its answers.
        CEILING_SAME_ANSWERS: lambda port: start_ceiling(port, answers),
    }
    results: dict[str, dict[str, Result]] = {}
    for server, start in servers.items():
        port = free_port()
        with running(start(port), f"http://127.0.0.1:{port}") as url:
            infer = f"{url}/v2/models/{MODEL_NAME}/infer"
            if server == COMPILED:
                answers.write_text(
                    json.dumps({body(rows): post(infer, body(rows)) for rows in sizes})
                )
            run_wrk(infer, bodies[1], connections=8, duration=2)  # warm-up
            results[server] = {
                label: median_of(
                    [
                        run_wrk(infer, bodies[rows], connections, arguments.duration)
                        for _ in range(arguments.rounds)
                    ]
                )
                for label, rows, connections in SCENARIOS
            }
    print(markdown(results, arguments))
    print(f"\nlogs and artifact: {root}", file=sys.stderr)


def ensure_mlserver_venv() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    # The peer gets our versions of what unpickles the model.
    same = [f"{name}=={version(name)}" for name in ("scikit-learn", "joblib", "numpy")]
    marker = MLSERVER_VENV / "modelops-packages.json"
    wanted = json.dumps(MLSERVER_PACKAGES + same)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return MLSERVER_VENV
    print(f"creating {MLSERVER_VENV} with {' '.join(MLSERVER_PACKAGES + same)}", file=sys.stderr)
    uv = shutil.which("uv")
    if uv:
        subprocess.run(
            [uv, "venv", "--allow-existing", "-p", sys.executable, str(MLSERVER_VENV)], check=True
        )
        environment = os.environ | {"VIRTUAL_ENV": str(MLSERVER_VENV)}
        subprocess.run(
            [uv, "pip", "install", *MLSERVER_PACKAGES, *same], check=True, env=environment
        )
    else:
        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", *MLSERVER_PACKAGES, *same], check=True)
    marker.write_text(wanted)
    return MLSERVER_VENV


def start_ours(
    artifact: Path, port: int, workers: int, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    metadata = json.loads((artifact / "metadata.json").read_text())
    environment = os.environ | {
        "MODELOPS_MODEL_DIR": str(artifact),
        "MODELOPS_MODEL_NAME": MODEL_NAME,
        "MODELOPS_MODEL_SHA256": metadata["sha256"],
        "MODELOPS_GRPC_PORT": str(free_port()),
        **(
            {"MODELOPS_COMPILED_SHA256": metadata["compiled"]["sha256"]}
            if "compiled" in metadata
            else {}
        ),
        **(settings or {}),
    }
    bin_dir = Path(sys.executable).parent
    if workers == 1:
        command = [str(bin_dir / "modelops-serve"), "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [
            str(bin_dir / "uvicorn"), "--factory", "modelops_server.cli:app_from_environment",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
        ]  # fmt: skip
    return subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_ceiling(port: int, answers: Path | None = None) -> subprocess.Popen[bytes]:
    """The ceiling answering every request with a one-row answer, or with `answers`' answer."""
    environment = os.environ | ({"CEILING_ANSWERS": str(answers)} if answers else {})
    command = [
        str(Path(sys.executable).parent / "uvicorn"), "ceiling:app",
        "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, env=environment, start_new_session=True)


def start_mlserver(
    venv: Path, artifact: Path, scratch: Path, port: int, tuned: bool
) -> subprocess.Popen[bytes]:
    """MLServer serving the same file: with its default settings (one inference worker
    process), or tuned for speed (debug logging, gzip and the worker pool off)."""
    directory = scratch / ("mlserver-tuned" if tuned else "mlserver")
    (directory / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "host": "127.0.0.1",
    }
    if tuned:
        settings |= {"debug": False, "gzip_enabled": False, "parallel_workers": 0}
    (directory / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(artifact / "model.joblib")},
    }
    (directory / MODEL_NAME / "model-settings.json").write_text(json.dumps(model_settings))
    log = (scratch / f"{directory.name}.log").open("wb")
    return subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(directory)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # MLServer keeps its multiprocess metrics in ./.metrics and clears it on start.
        cwd=directory,
        start_new_session=True,
    )


@contextmanager
def running(process: subprocess.Popen[bytes], url: str) -> Iterator[str]:
    try:
        deadline = time.monotonic() + 180
        while not ready(f"{url}/v2/models/{MODEL_NAME}/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server for {url} did not become ready: see its log")
            time.sleep(0.5)
        yield url
    finally:
        # The whole session: MLServer's and uvicorn's worker processes go with their parent.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # MLServer ignores SIGTERM while it starts its worker.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def body(rows: int) -> str:
    """The infer request's body, as wrk sends it."""
    tensor = {"name": "input-0", "shape": [rows, 4], "datatype": "FP64", "data": IRIS_ROW * rows}
    return json.dumps({"inputs": [tensor]})


def write_wrk_script(directory: Path, rows: int) -> Path:
    path = directory / f"infer-{rows}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body(rows))}\n"
    )
    return path


def post(url: str, body: str) -> str:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def run_wrk(url: str, script: Path, connections: int, duration: int) -> Result:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write) (\d+)", output))
    return Result(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=latency_ms(output, "50%"),
        p99_ms=latency_ms(output, "99%"),
        errors=errors,
    )


def latency_ms(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def median_of(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.requests_per_second for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
    )


def markdown(results: dict[str, dict[str, Result]], arguments: argparse.Namespace) -> str:
    scenarios = list(results[COMPILED])
    header = f"| server | {' | '.join(scenarios)} |"
    rule = "| --- |" + " ---: |" * len(scenarios)

    def table(title: str, cell: Callable[[str, str], str], servers: list[str]) -> list[str]:
        rows = [
            f"| {server} | {' | '.join(cell(server, s) for s in scenarios)} |" for server in servers
        ]
        return ["", title, "", header, rule, *rows]

    def rate(server: str, scenario: str) -> float:
        return results[server][scenario].requests_per_second

    def p99(server: str, scenario: str) -> float:
        return results[server][scenario].p99_ms

    ours = [COMPILED, SCIKIT_LEARN]
    lines = [
        f"{arguments.estimator} on iris, {os.cpu_count()} cores, wrk -t1, "
        f"{arguments.duration}s per run, median of {arguments.rounds}, "
        f"modelops-serve workers: {arguments.ours_workers}",
        *table("requests/s", lambda a, s: f"{rate(a, s):,.0f}", list(results)),
        *table("p99 latency, ms", lambda a, s: f"{p99(a, s):.2f}", list(results)),
        *table(
            "share of the ceiling's requests/s (one-row answer / modelops' answers)",
            lambda a, s: (
                f"{rate(a, s) / rate(CEILING, s):.0%} / "
                f"{rate(a, s) / rate(CEILING_SAME_ANSWERS, s):.0%}"
            ),
            ours,
        ),
        *table(
            "requests/s against tuned MLServer",
            lambda a, s: f"{rate(a, s) / rate(MLSERVER_TUNED, s):.1f}x",
            ours,
        ),
        *table(
            "p99 against tuned MLServer (MLServer's / ours)",
            lambda a, s: f"{p99(MLSERVER_TUNED, s) / p99(a, s):.1f}x",
            ours,
        ),
    ]
    failed = {name: sum(r.errors for r in runs.values()) for name, runs in results.items()}
    if any(failed.values()):
        lines.append(f"\nerrors (non-2xx, timeouts, socket errors): {failed}")
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
