"""The pure builders: what each child manifest must say, without an API server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import sample  # type: ignore[import-not-found]
from modelops_operator import api, builders, constants, status
from modelops_operator.settings import Settings

SETTINGS = Settings(trainer_image="trainer:test", server_image="server:test")
MODEL = api.ModelRecord(
    version="v0123456789ab",
    sha256="f" * 64,
    artifact_path="/models/ns/iris/v0123456789ab",
    metrics={"accuracy": 0.97},
)


def spec_of(name: str, **changes: Any) -> api.ModelDeploymentSpec:
    spec = sample(name)["spec"]
    for path, value in changes.items():
        node = spec
        *parents, leaf = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return api.ModelDeploymentSpec.model_validate(spec)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    template = spec["template"]
    result: dict[str, Any] = template["spec"]["containers"][0]
    return result


def test_training_job_name_is_deterministic_and_follows_the_training_spec() -> None:
    iris = spec_of("iris")
    assert builders.training_job_name("iris", iris.training) == builders.training_job_name(
        "iris", spec_of("iris").training
    )
    assert builders.training_job_name("iris", iris.training) != builders.training_job_name(
        "iris", spec_of("iris", training__randomSeed=1).training
    )
    name = builders.training_job_name("x" * api.MAX_NAME_LENGTH, iris.training)
    assert len(name) <= 63, "a Job's name becomes a pod label value"


def test_a_retrain_token_names_a_new_job_and_no_token_keeps_the_old_name() -> None:
    iris = spec_of("iris").training
    assert builders.training_job_name("iris", iris, "") == builders.training_job_name("iris", iris)
    first, second = (builders.training_job_name("iris", iris, token) for token in ("1", "2"))
    assert len({builders.training_job_name("iris", iris), first, second}) == 3
    job = builders.build_training_job("iris", "ns", spec_of("iris"), SETTINGS, "1")
    assert job["metadata"]["name"] == first
    assert job["metadata"]["labels"][constants.LABEL_TRAINING_HASH] == first.rsplit("-", 1)[1]


def test_the_trainer_is_told_which_versions_to_keep_and_which_it_may_adopt() -> None:
    def env(job: dict[str, Any]) -> dict[str, Any]:
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}

    spec = spec_of("iris")
    empty = env(builders.build_training_job("iris", "ns", spec, SETTINGS))
    assert empty["MODELOPS_KEEP_VERSIONS"] == ""
    assert json.loads(empty["MODELOPS_RECORDED_VERSIONS"]) == {}
    older = MODEL.model_copy(update={"version": "v000000000001", "sha256": "a" * 64})
    newer = MODEL.model_copy(update={"metadata_sha256": "b" * 64})
    provided = status.provided_record(api.ModelSource(uri="https://x/m.joblib", sha256="c" * 64))
    job = env(
        builders.build_training_job("iris", "ns", spec, SETTINGS, history=[newer, older, provided])
    )
    assert job["MODELOPS_KEEP_VERSIONS"] == f"{newer.version},v000000000001,{provided.version}"
    # Only what status recorded of versions a Job trained vouches for a version in place.
    assert json.loads(job["MODELOPS_RECORDED_VERSIONS"]) == {
        newer.version: {"sha256": "f" * 64, "metadataSha256": "b" * 64},
        "v000000000001": {"sha256": "a" * 64},
    }
    assert job["MODELOPS_RUN_ID"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/controller-uid']"}
    }


def test_an_evicted_training_pod_is_not_counted_as_a_failure() -> None:
    job = builders.build_training_job("iris", "ns", spec_of("iris"), SETTINGS)
    assert job["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]


def test_quality_gate_does_not_retrain() -> None:
    stricter = spec_of("iris", training__qualityGate={"metric": "accuracy", "threshold": 0.99})
    assert builders.training_hash(stricter.training) == builders.training_hash(
        spec_of("iris").training
    )


def test_serving_changes_do_not_touch_the_training_job() -> None:
    more = spec_of("iris", serving__replicas=5)
    assert builders.build_training_job("iris", "ns", more, SETTINGS) == builders.build_training_job(
        "iris", "ns", spec_of("iris"), SETTINGS
    )


def test_training_job_passes_the_spec_and_collects_the_termination_message() -> None:
    spec = spec_of("iris")
    job = builders.build_training_job("iris", "ns", spec, SETTINGS)
    trainer = container(job)
    env = {item["name"]: item.get("value") for item in trainer["env"]}
    assert json.loads(env["MODELOPS_TRAINING_SPEC"]) == spec.training.to_wire()
    assert env["MODELOPS_NAMESPACE"] == "ns"
    assert trainer["terminationMessagePath"] == "/dev/termination-log"
    assert trainer["image"] == "trainer:test"
    assert trainer["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert (
        job["spec"]["backoffLimit"] == 2
        and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    )
    claim = job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == "iris-models"


def test_server_deployment_is_locked_down_and_verifies_the_artifact() -> None:
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    server = container(deployment)
    env = {item["name"]: item["value"] for item in server["env"]}
    assert env["MODELOPS_MODEL_SHA256"] == MODEL.sha256
    assert env["MODELOPS_MODEL_DIR"] == MODEL.artifact_path
    assert env["MODELOPS_MODEL_VERSION"] == MODEL.version
    security = server["securityContext"]
    assert (
        security["runAsNonRoot"]
        and security["readOnlyRootFilesystem"]
        and not security["allowPrivilegeEscalation"]
    )
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # Ready within a probe period of the server's start (under a second), not ten.
    assert server["readinessProbe"]["periodSeconds"] <= 2
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # Run in the container: the server drains for its own loopback alone.
    assert server["lifecycle"]["preStop"]["exec"]["command"] == [
        "modelops-drain",
        "--seconds",
        "10",
    ]
    mount = next(m for m in server["volumeMounts"] if m["name"] == "models")
    assert mount["readOnly"] is True
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["prometheus.io/scrape"] == "true"
        and annotations["prometheus.io/port"] == "8080"
    )
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"][constants.LABEL_VERSION] == MODEL.version


def test_the_history_reaches_the_page_through_a_mounted_configmap_not_the_pod_template() -> None:
    served = MODEL.model_copy(
        update={"served_since": "2026-12-01T10:00:00Z", "score": "accuracy=0.970"}
    )
    older = MODEL.model_copy(
        update={"version": "v000000000001", "served_since": "2026-11-01T10:00:00Z"}
    )
    configmap = builders.build_history_configmap("iris", "ns", [served, older], served)
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), served, SETTINGS)

    document = json.loads(configmap["data"]["history.json"])
    assert configmap["metadata"]["name"] == "iris-history"
    assert (document["serving"], document["servingSince"]) == (
        MODEL.version,
        "2026-12-01T10:00:00Z",
    )
    assert [(v["version"], v["servedSince"]) for v in document["versions"]] == [
        (MODEL.version, "2026-12-01T10:00:00Z"),
        ("v000000000001", "2026-11-01T10:00:00Z"),
    ]
    assert document["versions"][0]["score"] == "accuracy=0.970"
    env = {item["name"]: item["value"] for item in container(deployment)["env"]}
    assert env["MODELOPS_HISTORY_FILE"] == "/etc/modelops/history/history.json"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "history", "configMap": {"name": "iris-history", "optional": True}} in volumes
    # Whatever history says, the pod template (and so the pods) stays the same.
    unserved = MODEL.model_copy(update={"served_since": None})
    again = builders.build_server_deployment("iris", "ns", spec_of("iris"), unserved, SETTINGS)
    assert again["spec"]["template"] == deployment["spec"]["template"]


def test_autoscaled_deployment_leaves_replicas_to_the_hpa() -> None:
    spec = spec_of("wine")
    assert (
        "replicas"
        not in builders.build_server_deployment("wine", "ns", spec, MODEL, SETTINGS)["spec"]
    )
    assert spec.serving.autoscaling is not None
    hpa = builders.build_autoscaler("wine", "ns", spec.serving.autoscaling)
    assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "behavior" not in hpa["spec"], "Kubernetes' own scale-down window unless one is set"
    quick = spec.serving.autoscaling.model_copy(update={"scale_down_stabilization_seconds": 15})
    hpa = builders.build_autoscaler("wine", "ns", quick)
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 15}}


@pytest.mark.parametrize(
    ("sample_name", "serving", "budget"),
    [
        ("iris", {"replicas": 2}, True),
        ("iris", {"replicas": 1}, False),
        ("iris", {"replicas": 0}, False),
        ("wine", None, True),
        (
            "wine",
            {"autoscaling": {"maxReplicas": 1}, "resources": {"requests": {"cpu": "100m"}}},
            False,
        ),
    ],
)
def test_a_model_that_may_run_several_pods_gets_a_disruption_budget(
    sample_name: str, serving: dict[str, Any] | None, budget: bool
) -> None:
    spec = spec_of(sample_name, **({"serving": serving} if serving else {}))
    assert builders.has_several_replicas(spec.serving) == budget
    pdb = builders.build_disruption_budget(sample_name, "ns")
    deployment = builders.build_server_deployment(sample_name, "ns", spec, MODEL, SETTINGS)
    assert pdb["metadata"]["name"] == deployment["metadata"]["name"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    # A drain evicts one pod at a time; a pod that is not ready never blocks it.
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_serving_pods_spread_over_nodes() -> None:
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"] == deployment["spec"]["selector"]
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    # Preferred: a one-node cluster, or one with a full node, still runs every replica.
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"


def test_serving_image_override() -> None:
    spec = spec_of("iris", serving__image="registry.example/custom:1")
    assert (
        container(builders.build_server_deployment("iris", "ns", spec, MODEL, SETTINGS))["image"]
        == "registry.example/custom:1"
    )


def test_existing_claim_is_used_not_created() -> None:
    spec = spec_of("iris", storage={"existingClaim": "shared-models"})
    assert builders.build_claim("iris", "ns", spec.storage, SETTINGS) is None
    job = builders.build_training_job("iris", "ns", spec, SETTINGS)
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        == "shared-models"
    )


def test_created_claim_honours_size_and_class() -> None:
    spec = spec_of("iris", storage={"size": "5Gi", "storageClassName": "fast"})
    claim = builders.build_claim("iris", "ns", spec.storage, SETTINGS)
    assert claim is not None
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"


@pytest.mark.parametrize("change", [{"serving__replicas": 3}, {"serving__image": "other:1"}])
def test_spec_hash_annotation_changes_with_the_manifest(change: dict[str, Any]) -> None:
    def spec_hash(spec: api.ModelDeploymentSpec) -> str:
        deployment = builders.build_server_deployment("iris", "ns", spec, MODEL, SETTINGS)
        return str(deployment["metadata"]["annotations"][constants.ANNOTATION_SPEC_HASH])

    assert spec_hash(spec_of("iris")) == spec_hash(spec_of("iris"))
    assert spec_hash(spec_of("iris")) != spec_hash(spec_of("iris", **change))


def test_service_selects_the_serving_pods() -> None:
    service = builders.build_service("iris", "ns")
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    assert service["metadata"]["name"] == "iris"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert builders.endpoint("iris", "ns", SETTINGS) == "http://iris.ns.svc.cluster.local:8080"


def test_the_network_policy_fences_every_pod_of_the_model_and_refuses_link_local() -> None:
    policy = builders.build_network_policy("iris", "ns", SETTINGS)
    job = builders.build_training_job("iris", "ns", spec_of("iris"), SETTINGS)
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    selected = policy["spec"]["podSelector"]["matchLabels"].items()
    for pods in (job["spec"]["template"], deployment["spec"]["template"]):
        assert selected <= pods["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    served = {port["containerPort"] for port in container(deployment)["ports"]}
    assert {port["port"] for port in policy["spec"]["ingress"][0]["ports"]} == served
    dns, anywhere = policy["spec"]["egress"]
    assert {port["port"] for port in dns["ports"]} == {53} and "to" not in dns
    assert {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}} in anywhere["to"]
    assert {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}} in anywhere["to"]


def test_the_refused_ranges_are_the_admins_to_set_and_are_checked() -> None:
    wider = Settings(egress_refused_cidrs="169.254.0.0/16, 10.0.0.0/8")
    blocks = builders.build_network_policy("iris", "ns", wider)["spec"]["egress"][1]["to"]
    assert blocks[:2] == [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.0.0.0/8"]}},
        {"ipBlock": {"cidr": "::/0"}},
    ]
    nothing_refused = Settings(egress_refused_cidrs="")
    blocks = builders.build_network_policy("iris", "ns", nothing_refused)["spec"]["egress"][1]
    assert all("except" not in block.get("ipBlock", {}) for block in blocks["to"])
    with pytest.raises(ValueError, match=re.escape("'169.254.0.1/16' is not an address range")):
        Settings(egress_refused_cidrs="169.254.0.1/16")


def test_service_offers_rest_and_grpc_while_probes_stay_on_http() -> None:
    service = builders.build_service("iris", "ns")
    deployment = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    server = deployment["spec"]["template"]["spec"]["containers"][0]

    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert {name: port["port"] for name, port in ports.items()} == {"http": 8080, "grpc": 8081}
    assert ports["grpc"]["appProtocol"] == "grpc"
    served = {port["name"]: port["containerPort"] for port in server["ports"]}
    assert served == {"http": 8080, "grpc": 8081}
    assert {"name": "MODELOPS_GRPC_PORT", "value": "8081"} in server["env"]
    probes = (server["readinessProbe"], server["livenessProbe"])
    assert all(probe["httpGet"]["port"] == "http" for probe in probes)
    assert builders.grpc_endpoint("iris", "ns", SETTINGS) == "iris.ns.svc.cluster.local:8081"


S3 = {
    "bucket": "models",
    "prefix": "team-a",
    "endpoint": "http://objects.storage:7070",
    "credentialsSecret": "s3-credentials",
}
S3_MODEL = MODEL.model_copy(update={"artifact_path": "s3://models/team-a/ns/iris/v0123456789ab"})


def test_object_storage_trains_onto_a_pod_volume_and_uploads_without_a_claim() -> None:
    spec = spec_of("iris", storage={"s3": S3})
    assert builders.build_claim("iris", "ns", spec.storage, SETTINGS) is None
    job = builders.build_training_job("iris", "ns", spec, SETTINGS)
    pod = job["spec"]["template"]["spec"]
    trainer = pod["containers"][0]
    assert trainer["args"][-2:] == ["--upload-root", "s3://models/team-a"]
    assert {"name": "AWS_ENDPOINT_URL", "value": S3["endpoint"]} in trainer["env"]
    assert trainer["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert pod["volumes"][0] == {"name": "models", "emptyDir": {}}


def test_the_compiled_forms_digest_goes_to_the_server_and_the_fetch() -> None:
    compiled = MODEL.model_copy(update={"compiled_sha256": "c" * 64})
    spec = spec_of("iris", storage={"s3": S3})
    s3_compiled = S3_MODEL.model_copy(update={"compiled_sha256": "c" * 64})

    on_volume = builders.build_server_deployment("iris", "ns", spec_of("iris"), compiled, SETTINGS)
    fetched = builders.build_server_deployment("iris", "ns", spec, s3_compiled, SETTINGS)

    wanted = {"name": "MODELOPS_COMPILED_SHA256", "value": "c" * 64}
    assert wanted in container(on_volume)["env"]
    (fetch,) = fetched["spec"]["template"]["spec"]["initContainers"]
    assert fetch["args"][-2:] == ["--compiled-sha256", "c" * 64]
    unset = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    assert "MODELOPS_COMPILED_SHA256" not in {e["name"] for e in container(unset)["env"]}


def test_the_metadata_digest_goes_to_the_server_and_the_fetch() -> None:
    pinned = MODEL.model_copy(update={"metadata_sha256": "d" * 64})
    s3_pinned = S3_MODEL.model_copy(update={"metadata_sha256": "d" * 64})

    on_volume = builders.build_server_deployment("iris", "ns", spec_of("iris"), pinned, SETTINGS)
    spec = spec_of("iris", storage={"s3": S3})
    fetched = builders.build_server_deployment("iris", "ns", spec, s3_pinned, SETTINGS)

    assert {"name": "MODELOPS_METADATA_SHA256", "value": "d" * 64} in container(on_volume)["env"]
    (fetch,) = fetched["spec"]["template"]["spec"]["initContainers"]
    assert fetch["args"][-2:] == ["--metadata-sha256", "d" * 64]
    unset = builders.build_server_deployment("iris", "ns", spec_of("iris"), MODEL, SETTINGS)
    assert "MODELOPS_METADATA_SHA256" not in {e["name"] for e in container(unset)["env"]}


def test_a_version_in_object_storage_is_fetched_and_checked_by_an_init_container() -> None:
    spec = spec_of("iris", storage={"s3": S3})
    deployment = builders.build_server_deployment("iris", "ns", spec, S3_MODEL, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    local = f"{constants.ARTIFACT_MOUNT_PATH}/{S3_MODEL.version}"
    assert fetch["command"] == ["modelops-fetch"]
    assert fetch["args"] == ["--from", S3_MODEL.artifact_path, "--to", local, "--sha256", "f" * 64]
    assert fetch["image"] == container(deployment)["image"]
    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert {"name": "MODELOPS_MODEL_DIR", "value": local} in container(deployment)["env"]
    assert pod["volumes"][0] == {"name": "models", "emptyDir": {}}
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"])


def test_a_version_on_the_claim_is_read_from_it_though_the_spec_moved_to_object_storage() -> None:
    spec = spec_of("iris", storage={"s3": S3})
    deployment = builders.build_server_deployment("iris", "ns", spec, MODEL, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "iris-models"


def test_the_operator_default_applies_to_models_that_name_no_storage() -> None:
    settings = SETTINGS.model_copy(
        update={"artifact_s3": api.S3Storage.model_validate({"bucket": "fleet"})}
    )
    default = spec_of("iris")
    job = builders.build_training_job("iris", "ns", default, settings)
    assert container(job)["args"][-2:] == ["--upload-root", "s3://fleet"]
    assert "envFrom" not in container(job)
    assert builders.build_claim("iris", "ns", default.storage, settings) is None
    own_claim = spec_of("iris", storage={"existingClaim": "shared-models"})
    assert builders.object_storage(own_claim.storage, settings) is None


def test_the_operator_default_reads_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_ARTIFACT_S3", json.dumps(S3))
    assert Settings().artifact_s3 == api.S3Storage.model_validate(S3)


PROVIDED = {
    "uri": "s3://models/team-a/iris/model.joblib",
    "sha256": "a" * 64,
    "endpoint": "http://objects.storage:7070",
    "credentialsSecret": "s3-credentials",
}


def provided_spec(source: dict[str, Any]) -> api.ModelDeploymentSpec:
    return api.ModelDeploymentSpec.model_validate({"model": source, "serving": {"replicas": 3}})


def test_a_provided_model_is_fetched_as_one_file_with_its_own_s3_settings() -> None:
    spec = provided_spec(PROVIDED)
    assert spec.model is not None
    record = status.provided_record(spec.model)
    assert (record.version, record.origin) == ("v" + "a" * 12, "Provided")
    deployment = builders.build_server_deployment("iris", "ns", spec, record, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    local = f"{constants.ARTIFACT_MOUNT_PATH}/{record.version}"
    assert fetch["args"] == [
        "--from",
        PROVIDED["uri"],
        "--to",
        local,
        "--sha256",
        "a" * 64,
        "--file",
        constants.PROVIDED_MODEL_FILE,
    ]
    assert {"name": "AWS_ENDPOINT_URL", "value": PROVIDED["endpoint"]} in fetch["env"]
    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    server_env = container(deployment)["env"]
    assert {"name": "MODELOPS_MODEL_DIR", "value": local} in server_env
    assert {"name": "MODELOPS_MODEL_FILE", "value": constants.PROVIDED_MODEL_FILE} in server_env
    assert {"name": "MODELOPS_MODEL_SHA256", "value": "a" * 64} in server_env
    assert deployment["spec"]["replicas"] == 3
    assert pod["volumes"][0] == {"name": "models", "emptyDir": {}}


def test_a_provided_model_at_a_url_gets_no_s3_settings_even_with_an_operator_default() -> None:
    settings = SETTINGS.model_copy(update={"artifact_s3": api.S3Storage.model_validate(S3)})
    spec = provided_spec({"uri": "https://example.org/iris.joblib", "sha256": "b" * 64})
    assert spec.model is not None
    deployment = builders.build_server_deployment(
        "iris", "ns", spec, status.provided_record(spec.model), settings
    )
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetch["env"] == []
    assert "envFrom" not in fetch


def test_the_same_file_at_another_address_is_the_same_version() -> None:
    here = api.ModelSource.model_validate(PROVIDED)
    there = api.ModelSource.model_validate(
        {"uri": "https://example.org/iris.joblib", "sha256": PROVIDED["sha256"]}
    )
    assert status.provided_record(here).version == status.provided_record(there).version


MLFLOW = {"trackingUri": "http://mlflow.mlflow:5000", "credentialsSecret": "mlflow-token"}


def test_training_is_logged_to_the_models_mlflow_server_else_the_operators() -> None:
    own = spec_of("iris", mlflow=MLFLOW, storage={"s3": S3})
    trainer = container(builders.build_training_job("iris", "ns", own, SETTINGS))
    assert {"name": "MLFLOW_TRACKING_URI", "value": MLFLOW["trackingUri"]} in trainer["env"]
    assert trainer["envFrom"] == [
        {"secretRef": {"name": "s3-credentials"}},
        {"secretRef": {"name": "mlflow-token"}},
    ]
    default = api.MlflowSpec.model_validate({"trackingUri": "http://fleet-mlflow:5000"})
    settings = SETTINGS.model_copy(update={"mlflow": default})
    trainer = container(builders.build_training_job("iris", "ns", spec_of("iris"), settings))
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://fleet-mlflow:5000"} in trainer["env"]
    untracked = container(builders.build_training_job("iris", "ns", spec_of("iris"), SETTINGS))
    assert not any(variable["name"].startswith("MLFLOW") for variable in untracked["env"])


def test_a_model_in_an_mlflow_registry_is_fetched_through_its_server() -> None:
    spec = api.ModelDeploymentSpec.model_validate(
        {"model": {"uri": "models:/team-a.churn/3", "sha256": "e" * 64}, "mlflow": MLFLOW}
    )
    assert spec.model is not None and spec.model.in_mlflow
    deployment = builders.build_server_deployment(
        "churn", "ns", spec, status.provided_record(spec.model), SETTINGS
    )
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert fetch["args"][:2] == ["--from", "models:/team-a.churn/3"]
    assert fetch["env"] == [
        {"name": "MLFLOW_TRACKING_URI", "value": MLFLOW["trackingUri"]},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
    ]
    assert fetch["envFrom"] == [{"secretRef": {"name": "mlflow-token"}}]


def test_the_champion_job_points_the_alias_with_the_mlflow_credentials_only() -> None:
    spec = spec_of("iris", mlflow=MLFLOW | {"championAlias": "prod"})
    logged = api.MlflowRecord(
        run_id="r", run_url="u", model_uri="models:/ns.iris/12", model_url="m"
    )
    served = MODEL.model_copy(update={"mlflow": logged})
    job = builders.build_champion_job("iris", "ns", spec, SETTINGS, served)
    assert job is not None and job["metadata"]["name"] == "iris-champion-12"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (champion,) = pod["containers"]
    assert champion["command"] == ["modelops-champion"]
    assert champion["args"] == ["--model", "ns.iris", "--version", "12", "--alias", "prod"]
    assert champion["envFrom"] == [{"secretRef": {"name": "mlflow-token"}}]
    assert champion["securityContext"]["readOnlyRootFilesystem"] is True
    # Nothing to point: no server, a version not logged, or a provided model (its owner's).
    assert builders.build_champion_job("iris", "ns", spec_of("iris"), SETTINGS, served) is None
    assert builders.build_champion_job("iris", "ns", spec, SETTINGS, MODEL) is None
    provided = served.model_copy(update={"origin": "Provided"})
    assert builders.build_champion_job("iris", "ns", spec, SETTINGS, provided) is None
