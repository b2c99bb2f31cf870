"""Operator settings, from environment variables prefixed MODELOPS_."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_operator.api import MlflowSpec, S3Storage, ScrapeLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_")

    namespaces: str = Field(
        default="", description="Comma-separated namespaces to watch; empty watches all."
    )
    trainer_image: str = Field(
        default="modelops/trainer:0.1.0", description="Image of the training Jobs."
    )
    server_image: str = Field(
        default="modelops/inference-server:0.1.0",
        description="Default image of the serving pods (spec.serving.image overrides it).",
    )
    allowed_server_images: str = Field(
        default="",
        description="Comma-separated image repositories spec.serving.image may name, each exact "
        "(registry.example/team/server) or a prefix ending in '/*' (registry.example/team/*); "
        "empty: the repository of server_image alone. The serving pod's fetch container runs "
        "that image with the model's storage credentials, so a model naming any other image "
        "is refused (Failed, ImageNotAllowed) and its serving is left as it was.",
    )
    image_pull_policy: str = Field(
        default="IfNotPresent", description="imagePullPolicy of both images."
    )
    cluster_domain: str = Field(
        default="cluster.local", description="DNS domain used in status.endpoint."
    )
    scrape_configs: str = Field(
        default="modelops-system/modelops-scrape",
        description="namespace/prefix of the ConfigMaps holding the models' scrape jobs: "
        "<prefix>-00 to <prefix>-31, each with one file <prefix>-NN.yml, which Prometheus "
        "loads through scrape_config_files. Empty: no scrape config files (a platform with no "
        "Prometheus, or one that scrapes only through ServiceMonitors).",
    )
    scrape_file_bytes: int = Field(
        default=768 * 1024,
        ge=1,
        description="Most bytes the jobs of one scrape config file may take (a ConfigMap may "
        "hold 1 MiB): a model whose job does not fit is not scraped, and its Monitored "
        "condition says so.",
    )
    scrape_namespace_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description="Most bytes the jobs of one namespace may take in one scrape config file "
        "(about 230 jobs; the jobs are spread evenly over the 32 files, so about 7,000 models "
        "per namespace): one tenant cannot fill a file that other namespaces' models need.",
    )
    scrape_placement_key: str = Field(
        default="",
        description="Key of the hash that spreads the jobs over the files. Normally unset: the "
        "operator makes a random one on its first start and keeps it in the ConfigMap "
        "<prefix>-placement beside the files.",
    )
    scrape_limits: ScrapeLimits = Field(
        default_factory=ScrapeLimits,
        description="Default per-scrape limits of every model's scrape job or ServiceMonitor, "
        "as JSON in spec.monitoring.prometheus's form, e.g. "
        '{"sampleLimit": 10000, "bodySizeLimit": "16MB"}; what it leaves out keeps the built-in '
        "default (sampleLimit 5000, labelLimit 30, labelNameLengthLimit 128, "
        "labelValueLengthLimit 1024, bodySizeLimit 8MB). A scrape past a limit is dropped whole.",
    )
    scrape_max_limits: ScrapeLimits | None = Field(
        default=None,
        description="The most a model may raise its own limits to "
        "(spec.monitoring.prometheus.sampleLimit, ...), as JSON in the same form; a higher ask "
        "is capped, and its Monitored condition says so. Unset, or a limit it leaves out: the "
        "default is the most, so models can only lower their limits.",
    )
    service_monitors: bool = Field(
        default=False,
        description="Scrape each model through a Prometheus Operator ServiceMonitor, owned by "
        "the ModelDeployment, instead of a job in the scrape config files. Needs the "
        "monitoring.coreos.com/v1 ServiceMonitor CRD; without it the scrape config files are used and "
        "an Event says why.",
    )
    dashboards: bool = Field(
        default=True,
        description="Write each model's dashboard ConfigMap (<model>-dashboard, for Grafana's "
        "dashboard sidecar) where its spec asks for one; false on a platform with no Grafana.",
    )
    artifact_s3: S3Storage | None = Field(
        default=None,
        description="Object storage for the models that name no storage of their own (no "
        "storage.s3, existingClaim or storageClassName), as JSON in spec.storage.s3's form, "
        'e.g. {"bucket": "models", "credentialsSecret": "s3-credentials"}; the Secret is looked '
        "up in each model's namespace. Unset: such models keep their artifacts on a claim.",
    )
    mlflow: MlflowSpec | None = Field(
        default=None,
        description="The MLflow server of the models that name none (spec.mlflow), as JSON in "
        'its form, e.g. {"trackingUri": "http://mlflow.mlflow:5000"}. Unset: such models '
        "are not tracked.",
    )
    network_policies: bool = Field(
        default=True,
        description="Write a NetworkPolicy for each model's pods: they answer on the server's "
        "ports alone, and reach anything but egress_refused_cidrs. False where the cluster's "
        "admin writes the models' policies: NetworkPolicies only add what they allow, so the "
        "operator's would widen a stricter one of theirs.",
    )
    egress_refused_cidrs: str = Field(
        default="169.254.0.0/16,fe80::/10",
        description="Comma-separated address ranges a model's pods (training, the model's fetch, "
        "serving) may not reach but for DNS; by default the link-local ones, where clouds "
        "serve a node's credentials. Empty allows everything.",
    )
    health_port: int = Field(default=8081, description="Port of the operator's /healthz.")
    standalone: bool = Field(
        default=False,
        description="Run without peering (one replica only); otherwise the peering object "
        "named modelops must exist and only one replica acts at a time.",
    )
    resync_seconds: float = Field(
        default=60.0, gt=0, description="Reconcile every resource at least this often."
    )
    sweep_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Remove the scrape jobs of models that no longer exist at least this often.",
    )

    @field_validator("egress_refused_cidrs")
    @classmethod
    def _address_ranges(cls, value: str) -> str:
        for entry in _entries(value):
            try:
                ipaddress.ip_network(entry)
            except ValueError as error:
                raise ValueError(f"{entry!r} is not an address range such as 10.0.0.0/8") from error
        return value

    @property
    def egress_refused_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(entry) for entry in _entries(self.egress_refused_cidrs)]

    @property
    def scrape_files(self) -> bool:
        return bool(self.scrape_configs)

    @property
    def watched_namespaces(self) -> list[str]:
        return _entries(self.namespaces)


def _entries(comma_separated: str) -> list[str]:
    return [entry.strip() for entry in comma_separated.split(",") if entry.strip()]
