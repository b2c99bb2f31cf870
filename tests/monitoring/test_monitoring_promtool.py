"""promtool, Prometheus's own checker, on what the operator writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from local_prometheus import local_scrape_job
from modelops_operator.monitoring.grafana import (
    build_dashboard,
    build_fleet_dashboard,
    dashboard_queries,
)
from modelops_operator.monitoring.prometheus import (
    build_scrape_job,
    with_scrape_job,
)
from promql import concrete

USER_CONFIG = """\
global:
  scrape_interval: 30s
  evaluation_interval: 30s
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ['localhost:9090']}]
"""


def _check(promtool: Path, *arguments: str | Path) -> None:
    result = subprocess.run(
        [promtool, *arguments], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_config_with_model_jobs(promtool: Path, tmp_path: Path) -> None:
    config = USER_CONFIG
    for namespace, name, interval in [
        ("ml", "iris", "15s"),
        ("ml", "wine", "1m"),
        ("dev", "iris", "5s"),
    ]:
        config = with_scrape_job(config, build_scrape_job(namespace, name, interval))
    config = with_scrape_job(
        config,
        local_scrape_job(
            build_scrape_job("local", "iris", "1s"), "127.0.0.1:8080", version="v0123456789ab"
        ),
    )
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(config)

    _check(promtool, "check", "config", config_file)


def test_promtool_accepts_every_dashboard_query(promtool: Path, tmp_path: Path) -> None:
    queries = dashboard_queries(build_dashboard("ml", "iris")) + dashboard_queries(
        build_fleet_dashboard()
    )
    # promtool has no PromQL checker of its own; recording rules get their expressions parsed.
    rules = [
        {"record": f"modelops:dashboard_query_{index}", "expr": concrete(query)}
        for index, query in enumerate(queries)
    ]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))

    _check(promtool, "check", "rules", rules_file)
