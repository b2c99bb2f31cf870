"""Observability of served models: Prometheus scrape jobs and Grafana dashboards (pure)."""
