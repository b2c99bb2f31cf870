"""Dashboard queries as Prometheus itself can run them."""

from __future__ import annotations

# Grafana replaces its interval variables before a query reaches Prometheus.
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval")


def concrete(query: str, window: str = "1m") -> str:
    for variable in GRAFANA_INTERVALS:
        query = query.replace(variable, window)
    return query
