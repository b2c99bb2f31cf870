"""The platform's Prometheus, run with the deployment's own flags: no unauthenticated lifecycle
API, and a changed prometheus.yml (the operator's scrape jobs) is picked up by itself."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from local_prometheus import running_prometheus
from modelops_envtest.waiting import wait_until

DEPLOYMENT = (
    Path(__file__).resolve().parents[2] / "deploy/base/monitoring/prometheus/deployment.yaml"
)
WHERE_FILES_ARE = ("--config.file=", "--storage.tsdb.path=", "--web.listen-address=")
CONFIG = "global: {scrape_interval: 15s}\nscrape_configs: []\n"


def deployment_flags() -> list[str]:
    deployment = next(
        doc for doc in yaml.safe_load_all(DEPLOYMENT.read_text()) if doc["kind"] == "Deployment"
    )
    [server] = deployment["spec"]["template"]["spec"]["containers"]
    return [flag for flag in server["args"] if not flag.startswith(WHERE_FILES_ARE)]


def post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


def job_names(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/api/v1/status/config", timeout=5) as response:
        config = yaml.safe_load(json.loads(response.read())["data"]["yaml"])
    return [job["job_name"] for job in config.get("scrape_configs") or []]


def test_no_lifecycle_api_and_a_changed_config_is_read_anyway(
    prometheus_release: Path, tmp_path: Path
) -> None:
    with running_prometheus(prometheus_release, CONFIG, tmp_path, deployment_flags()) as url:
        assert post(f"{url}/-/reload") == 403
        assert post(f"{url}/-/quit") == 403
        assert job_names(url) == []
        (tmp_path / "prometheus.yml").write_text(
            CONFIG.replace("[]", "[{job_name: modelops/ml/iris, static_configs: []}]")
        )
        wait_until(
            lambda: job_names(url) == ["modelops/ml/iris"],
            timeout=60,
            what="Prometheus to read the changed prometheus.yml by itself",
        )
