"""Smoke test of the three container images, as the operator runs them.

Builds them with images/build.sh (the debootstrapped base, Docker's layer cache), then:
- the trainer trains the iris sample (deploy/samples/iris.yaml) into a host directory mounted at
  /models, with the operator's args, env and security context, and prints the summary;
- the inference server serves that artifact from the directory mounted read-only, with the env
  the operator sets, a read-only root filesystem and a tmpfs /tmp, and answers /predict;
- the operator image imports its handlers, and its container, on the real test control plane
  (tests/conftest.py), becomes healthy and turns the iris sample into a training Job.

Containers use the host's network (the engine here has no bridge; see docs/images.md); the server
listens on 127.0.0.1 only. MODELOPS_IMAGES_NETWORK=bridge publishes on 127.0.0.1 instead.
Run with `pytest -m images tests/images` or images/smoke.sh.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelops_envtest.controlplane import ControlPlane

pytestmark = [pytest.mark.images, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
VERSION = os.environ.get("MODELOPS_IMAGE_VERSION", "0.1.0")
TRAINER = f"modelops/trainer:{VERSION}"
SERVER = f"modelops/inference-server:{VERSION}"
OPERATOR = f"modelops/operator:{VERSION}"
LOAD = f"modelops/load:{VERSION}"
UID = 10001
NETWORK = os.environ.get("MODELOPS_IMAGES_NETWORK", "host")
# The restricted security context the operator gives its containers (builders.py).
RESTRICTED = [
    "--user",
    f"{UID}:{UID}",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]
# Four iris flowers: two setosa, one versicolor, one virginica (rows 0, 1, 50, 100 of the data).
FLOWERS = [[5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]
SPECIES = ["setosa", "setosa", "versicolor", "virginica"]


def docker(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} ... exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def images() -> None:
    """All four images, built (or found in the layer cache) by images/build.sh."""
    if shutil.which("docker") is None and shutil.which("apt-get") is None:
        pytest.fail("no docker client, and no apt-get to install Debian's docker.io")
    started = time.monotonic()
    subprocess.run(["bash", str(REPO / "images" / "build.sh")], check=True, timeout=3000)
    print(f"images/build.sh took {time.monotonic() - started:.0f} s")
    configs = {
        image: json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
        for image in (TRAINER, SERVER, OPERATOR, LOAD)
    }
    for image, config in configs.items():
        assert config["User"] == f"{UID}:{UID}", f"{image} runs as {config['User']!r}"
    # The defaults of the artifact contract and the operator's ports.
    assert configs[TRAINER]["Entrypoint"] == ["modelops-train"]
    assert configs[TRAINER]["Cmd"] == ["--output-root", "/models"]
    assert configs[SERVER]["Entrypoint"] == ["modelops-serve"]
    assert "MODELOPS_PORT=8080" in configs[SERVER]["Env"]
    assert "8080/tcp" in configs[SERVER]["ExposedPorts"]
    assert configs[OPERATOR]["Entrypoint"] == ["modelops-operator"]
    assert configs[LOAD]["Entrypoint"] == ["modelops-load"]
    assert "8081/tcp" in configs[OPERATOR]["ExposedPorts"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host directory the containers mount at /models, writable by uid 10001 only."""
    path = tmp_path_factory.mktemp("models")
    if os.geteuid() == 0:
        os.chown(path, UID, UID)
        path.chmod(0o755)
    else:
        path.chmod(0o777)
    # tmp_path_factory's parents are 0700 for the owner: let uid 10001 through to the mount.
    for parent in path.parents:
        if parent == Path(tmp_path_factory.getbasetemp()).parent:
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    return path


@pytest.fixture(scope="module")
def container_names() -> Iterator[list[str]]:
    """Names of the containers a test started; all removed at the end, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "--force", name, check=False)


def training_spec() -> dict[str, Any]:
    sample = yaml.safe_load((REPO / "deploy" / "samples" / "iris.yaml").read_text())
    spec: dict[str, Any] = sample["spec"]["training"]
    return spec


@pytest.fixture(scope="module")
def summary(images: None, models_dir: Path, container_names: list[str]) -> dict[str, Any]:
    """Runs the trainer image as the operator's Job does; its summary JSON."""
    name = f"modelops-smoke-trainer-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    result = docker(
        "run",
        "--name",
        name,
        # The builtin datasets ship with scikit-learn: training needs no network at all.
        "--network",
        "none",
        *RESTRICTED,
        "--volume",
        f"{models_dir}:/models",
        "--env",
        f"MODELOPS_TRAINING_SPEC={json.dumps(training_spec())}",
        "--env",
        "MODELOPS_NAMESPACE=default",
        TRAINER,
        "--output-root",
        "/models",
        "--name",
        "iris",
        timeout=600,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must be the summary alone, got:\n{result.stdout}"
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_trainer_writes_the_artifact(summary: dict[str, Any], models_dir: Path) -> None:
    assert summary["name"] == "iris"
    assert summary["namespace"] == "default"
    assert re.fullmatch(r"v[0-9a-f]{12}", summary["version"]), summary
    assert summary["artifactPath"] == f"/models/default/iris/{summary['version']}"
    assert summary["metrics"]["accuracy"] >= 0.9, summary["metrics"]

    version_dir = models_dir / "default" / "iris" / summary["version"]
    model_file = version_dir / "model.joblib"
    assert model_file.is_file(), sorted(p.name for p in models_dir.rglob("*"))
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == summary["sha256"]
    metadata = json.loads((version_dir / "metadata.json").read_text())
    assert metadata["sha256"] == summary["sha256"]
    assert metadata["target"]["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["libraryVersions"]["python"].startswith("3.11.")
    assert model_file.stat().st_uid == UID or os.geteuid() != 0


def wait_ready(url: str, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        if not state["Running"] or time.monotonic() > deadline:
            logs = docker("logs", name, check=False)
            raise AssertionError(
                f"{name} not ready at {url} (state {state['Status']}, exit {state['ExitCode']})\n"
                f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
            )
        time.sleep(0.5)


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_server_serves_the_artifact(
    summary: dict[str, Any], models_dir: Path, container_names: list[str]
) -> None:
    name = f"modelops-smoke-server-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    port = free_port()
    if NETWORK == "bridge":
        network = ["--publish", f"127.0.0.1:{port}:8080"]
    else:
        # The image's defaults are 0.0.0.0:8080 and :8081; on the host's network, loopback and
        # free ports for both, as anything else on the machine may hold the defaults.
        network = ["--network", "host", "--env", "MODELOPS_HOST=127.0.0.1"]
        network += ["--env", f"MODELOPS_PORT={port}", "--env", f"MODELOPS_GRPC_PORT={free_port()}"]
    docker(
        "run",
        "--detach",
        "--name",
        name,
        *network,
        *RESTRICTED,
        "--volume",
        f"{models_dir}:/models:ro",
        "--env",
        f"MODELOPS_MODEL_DIR={summary['artifactPath']}",
        "--env",
        "MODELOPS_MODEL_NAME=iris",
        "--env",
        f"MODELOPS_MODEL_VERSION={summary['version']}",
        "--env",
        f"MODELOPS_MODEL_SHA256={summary['sha256']}",
        SERVER,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/v2/health/ready", name)

    answer = post_json(f"{base}/predict", {"instances": FLOWERS})
    assert answer["model_name"] == "iris"
    assert answer["model_version"] == summary["version"]
    assert answer["predictions"] == SPECIES
    assert answer["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(answer["probabilities"]) == len(FLOWERS)
    for row in answer["probabilities"]:
        assert sum(row) == pytest.approx(1.0)

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        assert response.status == 200
    state = json.loads(docker("inspect", name).stdout)[0]["State"]
    assert state["Running"], state


def inline_kubeconfig(control_plane: ControlPlane, directory: Path) -> Path:
    """The control plane's kubeconfig with its certificates inline, readable by uid 10001."""
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    fields = {
        "certificate-authority": "certificate-authority-data",
        "client-certificate": "client-certificate-data",
        "client-key": "client-key-data",
    }
    for entry in [c["cluster"] for c in config["clusters"]] + [u["user"] for u in config["users"]]:
        for path_key, data_key in fields.items():
            if path_key in entry:
                data = Path(entry.pop(path_key)).read_bytes()
                entry[data_key] = base64.b64encode(data).decode()
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    directory.chmod(0o755)
    path.chmod(0o644)
    return path


def test_the_load_generator_is_an_image_of_its_own(
    images: None, container_names: list[str]
) -> None:
    """Locust and gevent (and their patching of the standard library) are in modelops/load
    alone: the server's image, which serves every model, holds neither."""

    def imports(image: str, modules: str) -> subprocess.CompletedProcess[str]:
        name = f"modelops-smoke-load-{uuid.uuid4().hex[:8]}"
        container_names.append(name)
        return docker(
            "run", "--rm", "--name", name, "--network", "none", *RESTRICTED,
            "--entrypoint", "python", image, "-c", f"import {modules}",
            check=False,
        )  # fmt: skip

    for module in ("locust", "gevent"):
        refused = imports(SERVER, module)
        assert refused.returncode != 0 and "ModuleNotFoundError" in refused.stderr, module
    assert imports(LOAD, "locust, gevent, modelops_server.load").returncode == 0


def test_operator_image_imports(images: None, container_names: list[str]) -> None:
    """The entrypoint's module and the handlers import: the dependency set matches the code."""
    name = f"modelops-smoke-import-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    docker(
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        "none",
        *RESTRICTED,
        "--entrypoint",
        "python",
        OPERATOR,
        "-c",
        "import modelops_operator.__main__, modelops_operator.handlers",
    )


@pytest.mark.controlplane
def test_operator_image_reconciles(
    images: None,
    control_plane: ControlPlane,
    tmp_path: Path,
    container_names: list[str],
) -> None:
    """The operator container, against the real control plane, becomes healthy and turns the
    iris sample into a training Job that runs the trainer image."""
    crds = REPO / "crds"
    control_plane.kubectl("apply", "--server-side", "-f", str(crds))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/modeldeployments.modelops.dev", "--timeout=60s"
    )
    namespace = f"img-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    kubeconfig = inline_kubeconfig(control_plane, tmp_path)

    name = f"modelops-smoke-operator-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    port = free_port()
    docker(
        "run",
        "--detach",
        "--name",
        name,
        # The API server listens on loopback: the container shares the host's network.
        "--network",
        "host",
        *RESTRICTED,
        "--volume",
        f"{kubeconfig}:/etc/modelops/kubeconfig:ro",
        "--env",
        "KUBECONFIG=/etc/modelops/kubeconfig",
        "--env",
        f"MODELOPS_HEALTH_PORT={port}",
        "--env",
        f"MODELOPS_NAMESPACES={namespace}",
        "--env",
        "MODELOPS_STANDALONE=true",
        OPERATOR,
    )
    wait_ready(f"http://127.0.0.1:{port}/healthz", name)

    control_plane.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy/samples/iris.yaml"))
    deadline = time.monotonic() + 120
    images_of_jobs: list[str] = []
    while not images_of_jobs:
        result = control_plane.kubectl(
            "get", "jobs", "-n", namespace, "-l", "modelops.dev/model=iris", "-o", "json"
        )
        jobs = json.loads(result.stdout)["items"]
        images_of_jobs = [
            container["image"]
            for job in jobs
            for container in job["spec"]["template"]["spec"]["containers"]
        ]
        if time.monotonic() > deadline:
            logs = docker("logs", name, check=False)
            raise AssertionError(
                f"no training Job in 120 s:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
            )
        time.sleep(1)
    assert images_of_jobs == [TRAINER]
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
