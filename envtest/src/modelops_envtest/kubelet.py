"""A stand-in for the kubelet: there are no nodes, so pods created by the real Job and
ReplicaSet controllers never run. This reports their outcome through the API, as a kubelet
would, so the real controllers and the operator take it from there. The work itself (training,
serving) is done by the real programs as local processes where a test or demo needs it."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import kubernetes

from modelops_envtest.waiting import wait_until


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_status(pod: Any, ready: bool, state: dict[str, Any]) -> dict[str, Any]:
    container = pod.spec.containers[0]
    return {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    }


class Kubelet:
    """Plays the kubelet's part for pods the real controllers create."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)

    def pods(self, namespace: str, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def terminate(self, pod: Any, exit_code: int, message: str) -> None:
        """Report the pod's container as exited, leaving `message` as its termination message."""
        now = _now()
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "message": message,
            "startedAt": now,
            "finishedAt": now,
        }
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "startTime": now,
            "containerStatuses": [_container_status(pod, False, {"terminated": terminated})],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def evict(self, pod: Any, message: str) -> None:
        """Report the pod evicted for node pressure, as the kubelet does: Failed, with a
        DisruptionTarget condition."""
        now = _now()
        status = {
            "phase": "Failed",
            "reason": "Evicted",
            "message": message,
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "message": message,
                    "lastTransitionTime": now,
                }
            ],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def cannot_schedule(self, pod: Any, since: str, message: str) -> None:
        """Report that the scheduler has found no node for the pod since `since`, as it says
        so (the scheduler's part, played like the kubelet's)."""
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": since,
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name,
            pod.metadata.namespace,
            {"status": {"phase": "Pending", "conditions": [condition]}},
        )

    def cannot_attach(self, pod: Any, scheduled: str, reason: str, message: str) -> None:
        """Report the pod scheduled at `scheduled` with its container still being made, and
        post the Warning Event that says why, as the attach/detach controller posts one for
        a volume attached elsewhere (Multi-Attach)."""
        status = {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled}
            ],
            "containerStatuses": [
                _container_status(pod, False, {"waiting": {"reason": "ContainerCreating"}})
            ],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )
        now = _now()
        # A plain body, as for the status patches above; the client's stub wants its model.
        event: Any = {
            "metadata": {
                "generateName": f"{pod.metadata.name}.",
                "namespace": pod.metadata.namespace,
            },
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": pod.metadata.namespace,
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
            },
            "type": "Warning",
            "reason": reason,
            "message": message,
            "source": {"component": "attachdetach-controller"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.core.create_namespaced_event(pod.metadata.namespace, event)

    def mark_ready(self, pod: Any) -> None:
        """Report the pod Running with its container started and Ready."""
        now = _now()
        status = {
            "phase": "Running",
            "startTime": now,
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [_container_status(pod, True, {"running": {"startedAt": now}})],
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def _training_pod(self, namespace: str, job_name: str) -> Any:
        def running_pod() -> Any:
            pods = [
                pod
                for pod in self.pods(namespace, f"job-name={job_name}")
                if pod.status.phase not in ("Succeeded", "Failed")
            ]
            return pods[0] if pods else None

        return wait_until(running_pod, what=f"a pod of Job {job_name}")

    def finish_training(self, namespace: str, job_name: str, summary: dict[str, Any]) -> None:
        self.terminate(self._training_pod(namespace, job_name), 0, json.dumps(summary))

    def fail_training(self, namespace: str, job_name: str, message: str) -> None:
        self.terminate(self._training_pod(namespace, job_name), 1, message)

    def evict_training(self, namespace: str, job_name: str) -> str:
        """Evict the Job's running pod; its name."""
        pod = self._training_pod(namespace, job_name)
        self.evict(pod, "The node was low on resource: memory.")
        return str(pod.metadata.name)

    def make_ready(self, namespace: str, model: str | None = None) -> int:
        """Mark every serving pod of the model (of all models without one) Running and Ready;
        returns how many it marked."""
        marked = 0
        selector = "app.kubernetes.io/component=server"
        if model:
            selector += f",modelops.dev/model={model}"
        for pod in self.pods(namespace, selector):
            if pod.status.phase == "Running" or pod.metadata.deletion_timestamp:
                continue
            try:
                self.mark_ready(pod)
            except kubernetes.client.exceptions.NotFoundException:
                continue  # deleted since listed (a scale-down): a kubelet has nothing to report
            marked += 1
        return marked

    def serve_until(
        self,
        namespace: str,
        model: str,
        condition: Callable[[], Any],
        timeout: float = 60.0,
        what: str = "",
    ) -> Any:
        """Play the kubelet for the model's serving pods (marking each new one Ready) until
        `condition()` holds; its value. The wait ends on the condition alone, never on a pod
        being marked."""

        def served() -> Any:
            self.make_ready(namespace, model)
            return condition()

        return wait_until(served, timeout=timeout, what=what)
