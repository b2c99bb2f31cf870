"""Proof that the suite's control plane is the real thing: what only a real apiserver and
controller-manager do (schema and CEL admission, status subresource, printer columns,
garbage collection, the Job controller)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from modelops_envtest.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.proof.modelops.dev}
spec:
  group: proof.modelops.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Colour, type: string, jsonPath: .status.colour}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 0}
              maxSize: {type: integer}
            x-kubernetes-validations:
            - rule: "!has(self.maxSize) || self.size <= self.maxSize"
              message: size must not exceed maxSize
          status:
            type: object
            properties:
              colour: {type: string}
"""


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane) -> None:
    control_plane.kubectl("apply", "-f", "-", stdin=WIDGET_CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.proof.modelops.dev", "--timeout=30s"
    )


def test_kubectl_creates_namespace_and_configmap(control_plane: ControlPlane) -> None:
    control_plane.kubectl("create", "namespace", "proof")
    control_plane.kubectl(
        "-n", "proof", "create", "configmap", "greeting", "--from-literal=hi=there"
    )
    got = control_plane.kubectl("-n", "proof", "get", "configmap", "greeting", "-o", "json")
    assert json.loads(got.stdout)["data"] == {"hi": "there"}


def test_server_is_the_pinned_release(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"


def test_schema_violation_is_rejected_with_the_apiservers_message(
    control_plane: ControlPlane, widget_crd: None, namespace: str
) -> None:
    bad = _apply_widget(control_plane, namespace, "{size: -1}")
    assert bad.returncode != 0
    assert (
        "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0"
        in bad.stderr
    )


def test_cel_rule_is_enforced(
    control_plane: ControlPlane, widget_crd: None, namespace: str
) -> None:
    bad = _apply_widget(control_plane, namespace, "{size: 5, maxSize: 3}")
    assert bad.returncode != 0
    assert "size must not exceed maxSize" in bad.stderr


def test_status_subresource_and_printer_columns(
    control_plane: ControlPlane, widget_crd: None, namespace: str
) -> None:
    control_plane.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        stdin="apiVersion: proof.modelops.dev/v1\nkind: Widget\nmetadata: {name: w}\n"
        "spec: {size: 2}\nstatus: {colour: ignored}\n",
    )
    # With the status subresource on, status in the main resource is dropped...
    widget = json.loads(
        control_plane.kubectl("-n", namespace, "get", "widget", "w", "-o", "json").stdout
    )
    assert "status" not in widget
    # ...and only the /status endpoint writes it.
    control_plane.kubectl(
        "-n",
        namespace,
        "patch",
        "widget",
        "w",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"colour": "blue"}}',
    )
    table = control_plane.kubectl("-n", namespace, "get", "widget", "w").stdout.splitlines()
    # Declared columns replace the default AGE column.
    assert table[0].split() == ["NAME", "SIZE", "COLOUR"]
    assert table[1].split()[:3] == ["w", "2", "blue"]


def test_deleting_an_owner_garbage_collects_its_dependent(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("-n", namespace, "create", "configmap", "owner")
    owner_uid = control_plane.kubectl(
        "-n", namespace, "get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}"
    ).stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
    }
    control_plane.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(dependent))
    control_plane.kubectl("-n", namespace, "delete", "configmap", "owner")

    def dependent_is_gone() -> bool:
        got = control_plane.kubectl("-n", namespace, "get", "configmap", "dependent", check=False)
        return "NotFound" in got.stderr

    wait_until(dependent_is_gone)


def test_job_controller_creates_the_pod(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl(
        "-n", namespace, "create", "job", "hello", "--image=busybox", "--", "true"
    )

    def pod_exists() -> bool:
        pods = control_plane.kubectl(
            "-n", namespace, "get", "pods", "-l", "job-name=hello", "-o", "name"
        )
        return bool(pods.stdout.strip())

    wait_until(pod_exists)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has stopped all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def _child_pids(parent: int) -> list[int]:
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True
    )
    return [int(pid) for pid in children.stdout.split()]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_standalone_control_plane_leaves_no_processes(stop_signal: signal.Signals) -> None:
    """`python -m modelops_envtest up` prints a kubeconfig; however it is stopped, nothing
    it started keeps running (SIGKILL included: the children die with their parent)."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "modelops_envtest", "up"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    lines = [runner.stdout.readline(), runner.stdout.readline()]
    assert lines[0].startswith("control plane ready in"), lines
    kubeconfig = lines[1].strip().removeprefix("export KUBECONFIG=")
    assert os.path.exists(kubeconfig)
    children = _child_pids(runner.pid)
    assert len(children) == 3, "etcd, kube-apiserver and kube-controller-manager"

    runner.send_signal(stop_signal)
    runner.wait(30)
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout=20)


def _apply_widget(
    control_plane: ControlPlane, namespace: str, spec: str
) -> subprocess.CompletedProcess[str]:
    return control_plane.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        check=False,
        stdin=f"apiVersion: proof.modelops.dev/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {spec}\n",
    )
