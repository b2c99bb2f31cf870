"""The one place that talks to the Kubernetes API."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from modelops_operator import constants
from modelops_operator.shared_configmap import SharedConfigMap

FIELD_MANAGER = "modelops-operator"
# A kind the apiserver does not serve is looked up again only this often: each miss re-runs
# discovery (a request per API group). A CRD installed meanwhile is seen within this time.
UNSERVED_RECHECK_SECONDS = 30.0
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
        # (apiVersion, kind) not served, with when that was seen (time.monotonic()).
        self._unserved: dict[tuple[str, str], float] = {}
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
        """Whether the apiserver knows the kind (its CRD is installed). A "no" is remembered
        for UNSERVED_RECHECK_SECONDS."""
        key = (api_version, kind)
        seen_unserved = self._unserved.get(key)
        if (
            seen_unserved is not None
            and time.monotonic() - seen_unserved < UNSERVED_RECHECK_SECONDS
        ):
            return False
        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            self._unserved[key] = time.monotonic()
            return False
        self._unserved.pop(key, None)
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
        """Server-side apply, skipped when the observed child already says all the manifest
        does. A live edit of a field the manifest sets (`kubectl scale`, `kubectl set image`)
        is drift, and is written back."""
        if observed is not None and covers(observed, manifest):
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

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        found = self._resource(api_version, kind).get(
            namespace=namespace, label_selector=label_selector
        )
        return [item.to_dict() for item in found.items]

    def update_configmap(
        self,
        reference: str,
        edit: Callable[[dict[str, str]], None],
        labels: dict[str, str] | None = None,
    ) -> None:
        """Apply `edit` to the data of a shared ConfigMap ("namespace/name"); see
        SharedConfigMap. Returns once the write that carried it succeeded."""
        with self._writers_lock:
            writer = self._writers.setdefault(
                reference, SharedConfigMap(self.core, reference, labels)
            )
        writer.submit(edit)


def covers(observed: Any, wanted: Any) -> bool:
    """Whether the observed object says everything `wanted` does. The apiserver adds defaults
    (extra keys are fine) and drops zero values (Go's omitempty: a missing key stands for
    False, 0, "" or empty)."""
    if isinstance(wanted, dict):
        return isinstance(observed, dict) and all(
            covers(observed[key], value) if key in observed else not value
            for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(wanted)
            and all(map(covers, observed, wanted))
        )
    return bool(observed == wanted)
