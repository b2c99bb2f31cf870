"""The one place that talks to the Kubernetes API."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, cast

import kubernetes
import urllib3

from modelops_operator import constants
from modelops_operator.shared_configmap import Edit, SharedConfigMap

FIELD_MANAGER = constants.COMPONENT
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


# The kinds the operator reads and writes, by (apiVersion, kind): their plural resource names.
PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    # Read for why a pod is stuck where its status does not say.
    ("v1", "Event"): "events",
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("batch/v1", "Job"): "jobs",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    (constants.API_VERSION, constants.KIND): constants.PLURAL,
    # kopf's peering objects, which the resync reads.
    ("kopf.dev/v1", "ClusterKopfPeering"): "clusterkopfpeerings",
    ("kopf.dev/v1", "KopfPeering"): "kopfpeerings",
}
# (connect, read): a request the apiserver never answers would hold its reconcile's thread,
# and the lock on a scrape file, for ever. No request of the operator's waits on anything.
REQUEST_TIMEOUT_SECONDS = (5.0, 30.0)
_JSON = "application/json"
_MERGE_PATCH = "application/merge-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"


def _path(api_version: str, kind: str, namespace: str | None = None, name: str = "") -> str:
    """The REST path of a kind's collection (in `namespace`, or cluster-wide), or of one object."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{root}{scope}/{PLURALS[(api_version, kind)]}" + (f"/{name}" if name else "")


# An apply carrying a resourceVersion is refused (409) unless the object has that version; when
# the object is absent the apiserver creates it and ignores the version. No object is ever at
# "1" (an etcd store is at revision 1 before its first write), so an apply with it only creates.
ABSENT = "1"


class NameTaken(Exception):
    """An apply that was to create an object met one already there under its name."""

    def __init__(self, existing: dict[str, Any]) -> None:
        metadata = existing["metadata"]
        super().__init__(f"{existing['kind']} {metadata['namespace']}/{metadata['name']} exists")
        self.existing = existing


class Kube:
    """The operator's requests, as plain JSON over the client's connection pool and auth. The
    generated models and the dynamic client cost two to three times the CPU per request, which
    is most of the operator's work at a thousand models."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self._writers: dict[tuple[str, str], SharedConfigMap] = {}
        # (apiVersion, kind) not served, with when that was seen (time.monotonic()).
        self._unserved: dict[tuple[str, str], float] = {}
        self._writers_lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = _JSON,
    ) -> dict[str, Any]:
        """The decoded response; an ApiException (status, reason, the apiserver's body) for
        anything but a 2xx."""
        _, url, headers, serialized, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Accept": _JSON, "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method, url, headers, serialized, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        response.read()
        if not 200 <= response.status < 300:
            raise kubernetes.client.ApiException(http_resp=response)
        decoded: dict[str, Any] = json.loads(response.data) if response.data else {}
        return decoded

    # -- the ModelDeployment itself --------------------------------------------------------

    def get_model(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(constants.API_VERSION, constants.KIND, namespace, name)

    def patch_model_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """The model as patched."""
        return self.request(
            "PATCH",
            _path(constants.API_VERSION, constants.KIND, namespace, name) + "/status",
            body={"status": status},
            content_type=_MERGE_PATCH,
        )

    # -- children --------------------------------------------------------------------------

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
        root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            served = any(
                resource.get("kind") == kind for resource in self.request("GET", root)["resources"]
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            served = False
        if served:
            self._unserved.pop(key, None)
        else:
            self._unserved[key] = time.monotonic()
        return served

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            return self.request("GET", _path(api_version, kind, namespace, name))
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.request(
            "POST",
            _path(manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace")),
            body=manifest,
        )

    def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """PUT: refused with a 409 when the manifest's resourceVersion is no longer current."""
        metadata = manifest["metadata"]
        return self.request(
            "PUT",
            _path(
                manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
            ),
            body=manifest,
        )

    def create_if_absent(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create, or return what is already there under that name (a retry, another replica,
        a watch that has not caught up); and whether it was created now."""
        metadata = manifest["metadata"]
        try:
            return self.create(manifest), True
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
            existing = self.get(
                manifest["apiVersion"],
                manifest["kind"],
                metadata.get("namespace"),
                metadata["name"],
            )
            if existing is None:
                raise
            return existing, False

    def apply(self, manifest: dict[str, Any], observed: dict[str, Any] | None) -> dict[str, Any]:
        """Server-side apply, skipped when the observed child already says all the manifest
        does. A live edit of a field the manifest sets (`kubectl scale`, `kubectl set image`)
        is drift, and is written back. With nothing observed the apply only creates: an object
        made under that name since it was looked for raises NameTaken, never taken over."""
        if observed is not None and covers(observed, manifest):
            return observed
        metadata = manifest["metadata"]
        path = _path(
            manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
        )
        if observed is None:
            manifest = {**manifest, "metadata": {**metadata, "resourceVersion": ABSENT}}
        try:
            return self.request(
                "PATCH",
                path,
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                body=manifest,
                content_type=_APPLY_PATCH,
            )
        except kubernetes.client.ApiException as error:
            if observed is not None or error.status != 409:
                raise
            existing = self.get(
                manifest["apiVersion"], manifest["kind"], metadata["namespace"], metadata["name"]
            )
            if existing is None:
                raise
            raise NameTaken(existing) from error

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self.request(
                "DELETE",
                _path(api_version, kind, namespace, name),
                query={"propagationPolicy": "Background"},
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        field_selector: str = "",
    ) -> list[dict[str, Any]]:
        """The kind's objects in `namespace` ("": in all) that the selectors select."""
        query = {"labelSelector": label_selector, "fieldSelector": field_selector}
        found = self.request("GET", _path(api_version, kind, namespace), query=query)
        return cast(list[dict[str, Any]], found["items"])

    def update_configmap(self, configmap: tuple[str, str], edit: Edit) -> None:
        """Apply `edit` to the data of a ConfigMap (namespace, name) that many models share;
        see SharedConfigMap. Returns once the write that carried it succeeded."""
        with self._writers_lock:
            writer = self._writers.get(configmap)
            if writer is None:
                writer = self._writers[configmap] = SharedConfigMap(self, *configmap)
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
