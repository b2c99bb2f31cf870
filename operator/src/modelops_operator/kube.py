"""The one place that talks to the Kubernetes API."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from modelops_operator import constants

FIELD_MANAGER = "modelops-operator"
# Worth retrying: conflicts, throttling and an apiserver that is briefly unwell.
TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
CONFLICT_ATTEMPTS = 30


def is_transient(error: Exception) -> bool:
    if isinstance(error, kubernetes.client.ApiException):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, urllib3.exceptions.HTTPError)


class Kube:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.dynamic = DynamicClient(api_client)
        self._writers: dict[str, SharedConfigMap] = {}
        self._writers_lock = threading.Lock()

    # -- the ModelDeployment itself --------------------------------------------------------

    def get_model(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(
                    constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name
                ),
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def patch_model_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            constants.GROUP,
            constants.VERSION,
            namespace,
            constants.PLURAL,
            name,
            {"status": status},
        )

    # -- children --------------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the apiserver knows the kind (its CRD is installed)."""
        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        result: dict[str, Any] = found.to_dict()
        return result

    def create_if_absent(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create, or return what is already there under that name (a retry, another replica)."""
        metadata = manifest["metadata"]
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        try:
            created: dict[str, Any] = resource.create(
                body=manifest, namespace=metadata["namespace"]
            ).to_dict()
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
            existing = self.get(
                manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
            )
            if existing is None:
                raise
            return existing
        return created

    def apply(self, manifest: dict[str, Any], observed: dict[str, Any] | None) -> dict[str, Any]:
        """Server-side apply, skipped when the observed child carries the same spec hash."""
        if observed is not None and _spec_hash(observed) == _spec_hash(manifest):
            return observed
        metadata = manifest["metadata"]
        applied: dict[str, Any] = (
            self._resource(manifest["apiVersion"], manifest["kind"])
            .server_side_apply(
                body=manifest,
                name=metadata["name"],
                namespace=metadata["namespace"],
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            .to_dict()
        )
        return applied

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace, propagation_policy="Background"
            )

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        pods = self._resource("v1", "Pod").get(namespace=namespace, label_selector=label_selector)
        return [pod.to_dict() for pod in pods.items]

    def update_configmap(
        self,
        reference: str,
        edit: Callable[[dict[str, str]], None],
        labels: dict[str, str] | None = None,
    ) -> bool:
        """Apply `edit` to the data of a shared ConfigMap ("namespace/name"); see
        SharedConfigMap. Returns whether this call wrote a change."""
        with self._writers_lock:
            writer = self._writers.setdefault(
                reference, SharedConfigMap(self.core, reference, labels)
            )
        return writer.submit(edit)


class SharedConfigUnavailable(ValueError):
    """A shared ConfigMap cannot be written for a reason the platform, not the model, must fix."""


class SharedConfigMap:
    """One ConfigMap that many reconciles edit at once (every model has a key or an entry).

    Edits are group-committed: whoever holds the write lock applies every edit queued so far
    in one read-modify-write, so fifty models starting together cost a few writes, not fifty
    conflicting ones. Each write carries the resourceVersion it read; a conflict (another
    operator replica, a human) means read again and redo.
    """

    def __init__(
        self, core: kubernetes.client.CoreV1Api, reference: str, labels: dict[str, str] | None
    ) -> None:
        self.core = core
        self.namespace, self.name = reference.split("/", 1)
        self.labels = labels
        self._queued: list[Callable[[dict[str, str]], None]] = []
        self._queue_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def submit(self, edit: Callable[[dict[str, str]], None]) -> bool:
        with self._queue_lock:
            self._queued.append(edit)
        with self._write_lock:
            with self._queue_lock:
                edits, self._queued = self._queued, []
            # Empty: an earlier writer already applied this edit along with its own.
            return bool(edits) and self._write(edits)

    def _write(self, edits: list[Callable[[dict[str, str]], None]]) -> bool:
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                current = self.core.read_namespaced_config_map(self.name, self.namespace)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise
                current = None
            before = dict((current.data or {}) if current else {})
            data = dict(before)
            for edit in edits:
                edit(data)
            if data == before:
                return False
            try:
                if current is None:
                    self._create(data)
                else:
                    current.data = data
                    self.core.replace_namespaced_config_map(self.name, self.namespace, current)
                return True
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        raise kubernetes.client.ApiException(
            status=409,
            reason=f"{self.namespace}/{self.name} kept changing over {CONFLICT_ATTEMPTS} attempts",
        )

    def _create(self, data: dict[str, str]) -> None:
        try:
            self.core.create_namespaced_config_map(
                self.namespace,
                kubernetes.client.V1ConfigMap(
                    metadata=kubernetes.client.V1ObjectMeta(name=self.name, labels=self.labels),
                    data=data,
                ),
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                raise SharedConfigUnavailable(
                    f"namespace {self.namespace} of the shared ConfigMap {self.name} does not "
                    "exist: create it, or point the operator's setting at another one"
                ) from error
            raise


def _spec_hash(manifest: dict[str, Any]) -> str | None:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return annotations.get(constants.ANNOTATION_SPEC_HASH)
