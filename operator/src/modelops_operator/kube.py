"""The one place that talks to the Kubernetes API."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from modelops_operator import constants
from modelops_operator.shared_configmap import SharedConfigMap

FIELD_MANAGER = "modelops-operator"
# Worth retrying: conflicts, throttling and an apiserver that is briefly unwell.
TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def is_transient(error: Exception) -> bool:
    if isinstance(error, kubernetes.client.ApiException):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, urllib3.exceptions.HTTPError)


def refusal_message(error: kubernetes.client.ApiException) -> str:
    """The apiserver's own words for a refused request (its Status message), else the reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"{error.status} {error.reason}")


class Kube:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.dynamic = DynamicClient(api_client)
        self._writers: dict[str, SharedConfigMap] = {}
        self._writers_lock = threading.Lock()

    # -- the ModelDeployment itself --------------------------------------------------------

    def list_models(self) -> list[dict[str, Any]]:
        """Every ModelDeployment in the cluster (name and namespace are what callers read)."""
        listed = cast(
            dict[str, Any],
            self.custom.list_cluster_custom_object(
                constants.GROUP, constants.VERSION, constants.PLURAL
            ),
        )
        return cast(list[dict[str, Any]], listed["items"])

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


def _spec_hash(manifest: dict[str, Any]) -> str | None:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return annotations.get(constants.ANNOTATION_SPEC_HASH)
