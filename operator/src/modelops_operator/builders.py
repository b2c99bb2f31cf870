"""Pure builders: a ModelDeployment's spec in, the manifests of its children out. No I/O.

Owner references are added by the caller (they need the live object's uid).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from modelops_operator import api, constants
from modelops_operator.settings import Settings

NON_ROOT_UID = 10001
SERVER_PORT_NAME = "http"
SERVER_GRPC_PORT_NAME = "grpc"
# A terminating serving pod keeps answering this long: kube-proxy stops sending it new
# connections only once the EndpointSlice change reaches it, which took over 5 s on a loaded
# 2-core kind node (one connection refused in 5,490 during a rollout under load).
SERVER_DRAIN_SECONDS = 10
# The Job controller labels each pod it makes with its Job's uid.
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def digest(value: Any, length: int = 10) -> str:
    """A short, stable hash of any JSON-able value."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def training_hash(training: api.TrainingSpec, retrain_token: str = "") -> str:
    """What names the training Job. The quality gate and the schedule are left out: changing
    only the threshold re-judges the model already trained instead of training it again. The retrain token
    (ANNOTATION_RETRAIN) counts only when set, so models never annotated keep their Jobs."""
    retrain = {"retrain": retrain_token} if retrain_token else {}
    return digest(trainer_spec(training) | {"qualityGate": None} | retrain)


def trainer_spec(training: api.TrainingSpec) -> dict[str, Any]:
    """What the trainer is given: the training spec but for when it runs, which is the
    operator's business (and names no version)."""
    return training.to_wire(exclude={"schedule"})


def labels(name: str, component: str) -> dict[str, str]:
    return {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_MODEL: name,
        constants.LABEL_COMPONENT: component,
    }


def selector(name: str, component: str) -> str:
    """`labels` as a label selector."""
    return ",".join(f"{key}={value}" for key, value in labels(name, component).items())


def claim_name(name: str, storage: api.StorageSpec) -> str:
    return storage.existing_claim or constants.CLAIM_NAME.format(name=name)


def object_storage(storage: api.StorageSpec, settings: Settings) -> api.S3Storage | None:
    """Where the model's artifacts go when not on a claim: its own s3, else the operator's
    default, unless the model asks for a claim of its own."""
    if storage.s3 is not None:
        return storage.s3
    if storage.existing_claim or storage.storage_class_name:
        return None
    return settings.artifact_s3


def _s3_client_environment(
    s3: api.S3Access | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A container's env and envFrom for the standard AWS client configuration of `s3`."""
    if s3 is None:
        return [], []
    env = [
        {"name": variable, "value": value}
        for variable, value in (("AWS_ENDPOINT_URL", s3.endpoint), ("AWS_REGION", s3.region))
        if value
    ]
    secret = [{"secretRef": {"name": s3.credentials_secret}}] if s3.credentials_secret else []
    return env, secret


def tracking(spec: api.ModelDeploymentSpec, settings: Settings) -> api.MlflowSpec | None:
    """The model's MLflow server: its own, else the operator's default."""
    return spec.mlflow or settings.mlflow


def _mlflow_client_environment(
    mlflow: api.MlflowSpec | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A container's env and envFrom for the standard MLflow client configuration."""
    if mlflow is None:
        return [], []
    secret = (
        [{"secretRef": {"name": mlflow.credentials_secret}}] if mlflow.credentials_secret else []
    )
    return [
        {"name": "MLFLOW_TRACKING_URI", "value": mlflow.tracking_uri},
        # MLflow's client reports its use to MLflow's makers unless told not to.
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
    ], secret


def _with_env_from(container: dict[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    return container | {"envFrom": sources} if sources else container


def endpoint(name: str, namespace: str, settings: Settings) -> str:
    return f"http://{_service_host(name, namespace, settings)}:{constants.SERVER_PORT}"


def grpc_endpoint(name: str, namespace: str, settings: Settings) -> str:
    return f"{_service_host(name, namespace, settings)}:{constants.SERVER_GRPC_PORT}"


def _service_host(name: str, namespace: str, settings: Settings) -> str:
    service = constants.SERVICE_NAME.format(name=name)
    return f"{service}.{namespace}.svc.{settings.cluster_domain}"


def page_hint(name: str, namespace: str) -> str:
    service = constants.SERVICE_NAME.format(name=name)
    return (
        f"kubectl -n {namespace} port-forward service/{service} {constants.SERVER_PORT}, "
        f"then open http://localhost:{constants.SERVER_PORT}/"
    )


def _metadata(name: str, namespace: str, child_labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": child_labels}


def with_spec_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """Stamp the manifest with a hash of itself, so an unchanged child is never re-applied."""
    manifest["metadata"].setdefault("annotations", {})[constants.ANNOTATION_SPEC_HASH] = digest(
        manifest
    )
    return manifest


def _resources(resources: api.Resources | None) -> dict[str, Any]:
    return resources.to_wire() if resources else {}


def _restricted_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _writer_and_reporter() -> dict[str, Any]:
    """The fields of a container that writes the models volume and runs to completion (the
    trainer, the model fetch), telling its outcome in its termination message."""
    return {
        "securityContext": _restricted_security_context(),
        "terminationMessagePath": constants.TERMINATION_LOG,
        # The outcome is in the termination log; a crash before it still tells something.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "models", "mountPath": constants.ARTIFACT_MOUNT_PATH},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _pod_spec(container: dict[str, Any], claim: str | None, *, read_only: bool) -> dict[str, Any]:
    """The pod both children share: no API token, the models volume (the claim, or a
    pod-local folder when the artifacts are in object storage), a writable /tmp."""
    models: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}
        if claim is not None
        else {"emptyDir": {}}
    )
    return {
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": NON_ROOT_UID},
        "containers": [container],
        "volumes": [{"name": "models", **models}, {"name": "tmp", "emptyDir": {}}],
    }


def build_history_configmap(
    name: str, namespace: str, history: Sequence[api.ModelRecord], serving: api.ModelRecord
) -> dict[str, Any]:
    """The model's versions, newest first, and which serves, for its page (the server reads
    the file; it never asks the apiserver)."""
    versions = [
        {
            "version": entry.version,
            "origin": entry.origin,
            "trainedAt": entry.trained_at,
            "score": entry.score,
            "metrics": entry.metrics,
            "servedSince": entry.served_since,
            **({"registeredModel": entry.mlflow.model_uri} if entry.mlflow else {}),
        }
        for entry in history
    ]
    document = {
        "serving": serving.version,
        "servingSince": serving.served_since,
        "versions": versions,
    }
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(
                constants.HISTORY_NAME.format(name=name), namespace, labels(name, "history")
            ),
            "data": {constants.HISTORY_FILE: json.dumps(document, indent=1, sort_keys=True)},
        }
    )


def build_claim(
    name: str, namespace: str, storage: api.StorageSpec, settings: Settings
) -> dict[str, Any] | None:
    """The artifact volume's claim, or None when the user brings an existing one or the
    artifacts are kept in object storage."""
    if storage.existing_claim or object_storage(storage, settings) is not None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata(claim_name(name, storage), namespace, labels(name, "storage")),
            "spec": spec,
        }
    )


def training_job_name(name: str, training: api.TrainingSpec, retrain_token: str = "") -> str:
    return constants.TRAINING_JOB_NAME.format(
        name=name, training_hash=training_hash(training, retrain_token)
    )


def build_training_job(
    name: str,
    namespace: str,
    spec: api.ModelDeploymentSpec,
    settings: Settings,
    retrain_token: str = "",
    history: Sequence[api.ModelRecord] = (),
) -> dict[str, Any]:
    """The training Job. The trainer removes the model's other versions from the volume,
    keeping those of `history` (when the run starts) and what it trains; a version already in
    place it adopts only when `history` recorded its digests, or its own Job wrote it."""
    training = spec.training
    assert training is not None, "a model that spec.model provides has no training Job"
    job_labels = labels(name, "training") | {
        constants.LABEL_TRAINING_HASH: training_hash(training, retrain_token)
    }
    s3 = object_storage(spec.storage, settings)
    s3_env, s3_env_from = _s3_client_environment(s3)
    mlflow_env, mlflow_env_from = _mlflow_client_environment(tracking(spec, settings))
    container = {
        "name": "trainer",
        "image": settings.trainer_image,
        "imagePullPolicy": settings.image_pull_policy,
        # With object storage the volume only stages the version before its upload.
        "args": ["--output-root", constants.ARTIFACT_MOUNT_PATH, "--name", name]
        + (["--upload-root", s3.root_uri] if s3 is not None else []),
        "env": [
            {"name": "MODELOPS_TRAINING_SPEC", "value": json.dumps(trainer_spec(training))},
            {"name": "MODELOPS_NAMESPACE", "value": namespace},
            {"name": "MODELOPS_KEEP_VERSIONS", "value": ",".join(e.version for e in history)},
            {"name": "MODELOPS_RECORDED_VERSIONS", "value": _recorded_versions(history)},
            # A retried pod of the same run may adopt what an earlier one wrote; no one else
            # can know this id before the Job exists.
            {
                "name": "MODELOPS_RUN_ID",
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_UID_LABEL}']"}},
            },
            *s3_env,
            *mlflow_env,
        ],
        "resources": _resources(training.resources),
        **_writer_and_reporter(),
    }
    container = _with_env_from(container, s3_env_from + mlflow_env_from)
    return with_spec_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _metadata(
                training_job_name(name, training, retrain_token), namespace, job_labels
            ),
            "spec": {
                "backoffLimit": training.backoff_limit,
                "activeDeadlineSeconds": training.active_deadline_seconds,
                # A pod evicted, preempted or lost with its node was not the training's fault:
                # it is replaced without counting against backoffLimit.
                "podFailurePolicy": {
                    "rules": [
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
                    ]
                },
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        **_pod_spec(
                            container,
                            None if s3 is not None else claim_name(name, spec.storage),
                            read_only=False,
                        ),
                    },
                },
            },
        }
    )


def champion_job_name(name: str, mlflow: api.MlflowRecord) -> str:
    return constants.CHAMPION_JOB_NAME.format(
        name=name, registered_version=mlflow.registered_version()[1]
    )


def build_champion_job(
    name: str,
    namespace: str,
    spec: api.ModelDeploymentSpec,
    settings: Settings,
    target: api.ModelRecord,
) -> dict[str, Any] | None:
    """The Job that points the registry's alias at the serving version: None for a version
    that is not a trained one registered in MLflow (a provided model's registry entry is its
    owner's), or with no MLflow server."""
    server = tracking(spec, settings)
    if server is None or target.origin != "Trained" or target.mlflow is None:
        return None
    registered, version = target.mlflow.registered_version()
    job_labels = labels(name, "champion")
    mlflow_env, mlflow_env_from = _mlflow_client_environment(server)
    container = _with_env_from(
        {
            "name": "champion",
            "image": settings.trainer_image,
            "imagePullPolicy": settings.image_pull_policy,
            "command": ["modelops-champion"],
            "args": [
                "--model",
                registered,
                "--version",
                version,
                "--alias",
                server.champion_alias,
            ],
            "env": mlflow_env,
            "securityContext": _restricted_security_context(),
            "terminationMessagePath": constants.TERMINATION_LOG,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "256Mi"},
            },
        },
        mlflow_env_from,
    )
    return with_spec_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _metadata(champion_job_name(name, target.mlflow), namespace, job_labels),
            "spec": {
                # MLflow's client retries a server that is away for minutes itself.
                "backoffLimit": 1,
                "activeDeadlineSeconds": 900,
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "securityContext": {"fsGroup": NON_ROOT_UID},
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        }
    )


def _recorded_versions(history: Sequence[api.ModelRecord]) -> str:
    """The digests status recorded for the model's versions: what lets the trainer adopt a
    version already in place (docs/artifact-contract.md)."""
    return json.dumps(
        {
            entry.version: {"sha256": entry.sha256}
            | ({"metadataSha256": entry.metadata_sha256} if entry.metadata_sha256 else {})
            for entry in history
            if entry.origin == "Trained"
        },
        sort_keys=True,
    )


def image_repository(image: str) -> str:
    """An image reference without its digest and tag: registry.example:5000/team/server."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def server_image_refusal(serving: api.ServingSpec, settings: Settings) -> str | None:
    """Why spec.serving.image may not run, or None when it may (docs/security.md)."""
    if serving.image is None:
        return None
    allowed = [
        entry.strip() for entry in settings.allowed_server_images.split(",") if entry.strip()
    ] or [image_repository(settings.server_image)]
    repository = image_repository(serving.image)
    if any(
        repository.startswith(entry[:-1]) if entry.endswith("/*") else repository == entry
        for entry in allowed
    ):
        return None
    return (
        f"spec.serving.image {serving.image} is not an image this operator runs: its server "
        f"images are {', '.join(allowed)} (MODELOPS_ALLOWED_SERVER_IMAGES), because the "
        "serving pod's fetch container runs it with the model's storage credentials; name one "
        "of those, or ask the cluster's admin to allow it"
    )


def build_server_deployment(
    name: str,
    namespace: str,
    spec: api.ModelDeploymentSpec,
    model: api.ModelRecord,
    settings: Settings,
) -> dict[str, Any]:
    serving = spec.serving
    selector = labels(name, "server")
    pod_labels = selector | {constants.LABEL_VERSION: model.version}
    probe = {"httpGet": {"port": SERVER_PORT_NAME}, "periodSeconds": 10}
    image = serving.image or settings.server_image
    # Where the version itself was kept decides, not the spec now: a rollback to a version
    # trained onto the claim still reads it from there.
    fetched = model.origin == "Provided" or model.artifact_path.startswith("s3://")
    model_dir = (
        f"{constants.ARTIFACT_MOUNT_PATH}/{model.version}" if fetched else model.artifact_path
    )
    provided_file = (
        [{"name": "MODELOPS_MODEL_FILE", "value": constants.PROVIDED_MODEL_FILE}]
        if model.origin == "Provided"
        else []
    )
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "ports": [
            {"name": SERVER_PORT_NAME, "containerPort": constants.SERVER_PORT},
            {"name": SERVER_GRPC_PORT_NAME, "containerPort": constants.SERVER_GRPC_PORT},
        ],
        "env": [
            {"name": "MODELOPS_MODEL_DIR", "value": model_dir},
            {"name": "MODELOPS_MODEL_NAME", "value": name},
            {"name": "MODELOPS_MODEL_VERSION", "value": model.version},
            {"name": "MODELOPS_MODEL_SHA256", "value": model.sha256},
            *(
                [{"name": "MODELOPS_COMPILED_SHA256", "value": model.compiled_sha256}]
                if model.compiled_sha256
                else []
            ),
            *(
                [{"name": "MODELOPS_METADATA_SHA256", "value": model.metadata_sha256}]
                if model.metadata_sha256
                else []
            ),
            {"name": "MODELOPS_PORT", "value": str(constants.SERVER_PORT)},
            {"name": "MODELOPS_GRPC_PORT", "value": str(constants.SERVER_GRPC_PORT)},
            {
                "name": "MODELOPS_HISTORY_FILE",
                "value": f"{constants.HISTORY_MOUNT_PATH}/{constants.HISTORY_FILE}",
            },
            *provided_file,
        ],
        "resources": _resources(serving.resources),
        "securityContext": _restricted_security_context(),
        # Asked every second, not every 10: the first probe comes as the container starts,
        # before the server listens (it is ready within a second), and each period more is
        # time a new model or a rollout waits for nothing.
        "readinessProbe": _probe(probe, "/v2/health/ready") | {"periodSeconds": 1},
        "livenessProbe": _probe(probe, "/v2/health/live") | {"failureThreshold": 6},
        # The server answers the hook after that long, closing kept-alive connections as it
        # answers on them meanwhile; then SIGTERM: uvicorn stops accepting and finishes the
        # requests in flight. Run in the container: the server drains for its loopback alone.
        "lifecycle": {
            "preStop": {
                "exec": {"command": ["modelops-drain", "--seconds", str(SERVER_DRAIN_SECONDS)]}
            }
        },
        "volumeMounts": [
            {"name": "models", "mountPath": constants.ARTIFACT_MOUNT_PATH, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "history", "mountPath": constants.HISTORY_MOUNT_PATH, "readOnly": True},
        ],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(constants.SERVER_PORT),
                    "prometheus.io/path": "/metrics",
                    constants.ANNOTATION_MODEL_SHA256: model.sha256,
                },
            },
            "spec": _fetching_pod_spec(container, spec, model, settings, model_dir)
            if fetched
            else _pod_spec(container, claim_name(name, spec.storage), read_only=True),
        },
    }
    # Optional: a pod made before the operator wrote it starts, and the page lists no versions.
    history = {"name": constants.HISTORY_NAME.format(name=name), "optional": True}
    deployment_spec["template"]["spec"]["volumes"].append({"name": "history", "configMap": history})
    deployment_spec["template"]["spec"]["topologySpreadConstraints"] = [
        {
            # Replicas on different nodes, where there are several: a node lost or drained
            # takes one of them, not all. Preferred, not required, so a model still runs on a
            # cluster whose nodes are full or few.
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
            # Spread each rollout's pods, not old and new together.
            "matchLabelKeys": ["pod-template-hash"],
        }
    ]
    # Under an autoscaler the HPA owns the replica count; leaving it out hands it over.
    if serving.autoscaling is None:
        deployment_spec["replicas"] = serving.replicas
    return with_spec_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(
                constants.SERVER_NAME.format(name=name),
                namespace,
                selector | {constants.LABEL_VERSION: model.version},
            ),
            "spec": deployment_spec,
        }
    )


def _fetching_pod_spec(
    server: dict[str, Any],
    spec: api.ModelDeploymentSpec,
    model: api.ModelRecord,
    settings: Settings,
    model_dir: str,
) -> dict[str, Any]:
    """A serving pod whose version is in object storage or at a URL: an init container of the
    server's image downloads it into the pod's own volume and checks its digest, then the
    server loads it from there (and checks the digest again, of the bytes it unpickles)."""
    provided = model.origin == "Provided"
    access: api.S3Access | None = spec.model if provided else object_storage(spec.storage, settings)
    s3_env, s3_env_from = _s3_client_environment(
        access if model.artifact_path.startswith("s3://") else None
    )
    mlflow_env, mlflow_env_from = _mlflow_client_environment(
        tracking(spec, settings) if model.artifact_path.startswith(api.MLFLOW_URI_PREFIX) else None
    )
    fetch = {
        "name": "fetch-model",
        "image": server["image"],
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["modelops-fetch"],
        "args": ["--from", model.artifact_path, "--to", model_dir, "--sha256", model.sha256]
        + (["--compiled-sha256", model.compiled_sha256] if model.compiled_sha256 else [])
        + (["--metadata-sha256", model.metadata_sha256] if model.metadata_sha256 else [])
        + (["--file", constants.PROVIDED_MODEL_FILE] if provided else []),
        "env": s3_env + mlflow_env,
        "resources": server["resources"],
        **_writer_and_reporter(),
    }
    return _pod_spec(server, None, read_only=True) | {
        "initContainers": [_with_env_from(fetch, s3_env_from + mlflow_env_from)]
    }


def _probe(base: dict[str, Any], path: str) -> dict[str, Any]:
    return base | {"httpGet": base["httpGet"] | {"path": path}}


def build_service(name: str, namespace: str) -> dict[str, Any]:
    return with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(
                constants.SERVICE_NAME.format(name=name), namespace, labels(name, "server")
            ),
            "spec": {
                "selector": labels(name, "server"),
                "ports": [
                    {
                        "name": SERVER_PORT_NAME,
                        "port": constants.SERVER_PORT,
                        "targetPort": SERVER_PORT_NAME,
                    },
                    {
                        "name": SERVER_GRPC_PORT_NAME,
                        "port": constants.SERVER_GRPC_PORT,
                        "targetPort": SERVER_GRPC_PORT_NAME,
                        # Meshes and gateways route it as gRPC (HTTP/2), not HTTP/1.
                        "appProtocol": "grpc",
                    },
                ],
            },
        }
    )


def build_autoscaler(name: str, namespace: str, autoscaling: api.Autoscaling) -> dict[str, Any]:
    server = constants.SERVER_NAME.format(name=name)
    window = autoscaling.scale_down_stabilization_seconds
    behavior = (
        {"behavior": {"scaleDown": {"stabilizationWindowSeconds": window}}}
        if window is not None
        else {}
    )
    return with_spec_hash(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _metadata(server, namespace, labels(name, "server")),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": server},
                "minReplicas": autoscaling.min_replicas,
                "maxReplicas": autoscaling.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                            },
                        },
                    }
                ],
            }
            | behavior,
        }
    )


def has_several_replicas(serving: api.ServingSpec) -> bool:
    """Whether the model may run more than one serving pod (then it gets a disruption budget)."""
    if serving.autoscaling is not None:
        return serving.autoscaling.max_replicas > 1
    return serving.replicas > 1


def build_disruption_budget(name: str, namespace: str) -> dict[str, Any]:
    """A node drain evicts the model's serving pods one at a time: the next only once the one
    before is replaced and ready elsewhere. A pod that is not ready (crashing, say) may always
    be evicted, so a broken model never blocks a drain."""
    return with_spec_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _metadata(
                constants.SERVER_NAME.format(name=name), namespace, labels(name, "server")
            ),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": labels(name, "server")},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            },
        }
    )


def build_network_policy(name: str, namespace: str, settings: Settings) -> dict[str, Any]:
    """What the model's pods may do on the network: answer on the server's ports (clients,
    probes, Prometheus), and reach anything but the refused ranges (the link-local ones by
    default: a cloud's metadata service hands out the node's credentials there), DNS always.
    Cluster pods stay reachable whatever the ranges, as some implementations match an ipBlock
    against addresses outside the cluster alone."""
    refused = settings.egress_refused_networks
    blocks = []
    for everywhere in (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")):
        block: dict[str, Any] = {"cidr": str(everywhere)}
        if within := [str(network) for network in refused if network.version == everywhere.version]:
            block["except"] = within
        blocks.append({"ipBlock": block})
    served = [
        {"protocol": "TCP", "port": port}
        for port in (constants.SERVER_PORT, constants.SERVER_GRPC_PORT)
    ]
    return with_spec_hash(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(
                constants.NETWORK_POLICY_NAME.format(name=name), namespace, labels(name, "network")
            ),
            "spec": {
                "podSelector": {
                    "matchLabels": {
                        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
                        constants.LABEL_MODEL: name,
                    }
                },
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": served}],
                "egress": [
                    {"ports": [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]},
                    {"to": [*blocks, {"namespaceSelector": {}}]},
                ],
            },
        }
    )


def build_peerings(name: str, namespaces: list[str]) -> list[dict[str, Any]]:
    """The kopf peering objects the operator's replicas meet at: one for the cluster, or one in
    each watched namespace that is named outright (a glob matches namespaces not known yet)."""
    if not namespaces:
        return [
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
        ]
    return [
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": name, "namespace": namespace},
        }
        for namespace in namespaces
        if not any(character in namespace for character in "*?[")
    ]
