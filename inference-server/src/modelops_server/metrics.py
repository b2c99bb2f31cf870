"""The server's Prometheus metrics. The names are the contract with the dashboards
(docs/inference-server.md has the table; the operator repeats them in
`modelops_operator.monitoring.metrics`), so they live here as constants.

No `model`/`namespace` label: Prometheus' scrape job adds those to every series of the pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The `_created` twin of every series doubles the scrape for nothing the dashboards use.
disable_created_metrics()

# Counter {endpoint, code}: every request, by HTTP route template or gRPC method path, and HTTP
# status code (a gRPC call's is the one its error has over REST).
REQUESTS = "modelops_requests_total"
# Histogram {endpoint}: request latency in seconds.
REQUEST_DURATION = "modelops_request_duration_seconds"
# Histogram: rows per prediction request.
BATCH_SIZE = "modelops_batch_size"
# Counter {class}: predicted rows per class (classifiers only).
PREDICTIONS = "modelops_predictions_total"
# Gauge {name, version, sha256, runtime} = 1: the model being served and how it is computed.
MODEL_INFO = "modelops_model_info"
# Gauge {metric}: the held-out training metrics of the model being served.
MODEL_METRIC = "modelops_model_metric"

# A prediction takes tens of microseconds on the fast path and milliseconds on scikit-learn.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _without_suffix(name: str, suffix: str) -> str:
    # prometheus_client appends `_total` to counters itself.
    return name.removesuffix(suffix)


class Metrics:
    """The server's series in a registry of their own, so tests and several apps in one process
    never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            _without_suffix(REQUESTS, "_total"),
            "Requests by HTTP route or gRPC method, and HTTP status code.",
            ("endpoint", "code"),
            registry=self.registry,
        )
        self._duration = Histogram(
            REQUEST_DURATION,
            "Request latency in seconds, by HTTP route or gRPC method.",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._batch_size = Histogram(
            BATCH_SIZE,
            "Rows per prediction request.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            _without_suffix(PREDICTIONS, "_total"),
            "Predicted rows by class (classifiers).",
            ("class",),
            registry=self.registry,
        )
        self._model_info = Gauge(
            MODEL_INFO,
            "The model being served (always 1).",
            ("name", "version", "sha256", "runtime"),
            registry=self.registry,
        )
        self._model_metric = Gauge(
            MODEL_METRIC,
            "Held-out training metrics of the model being served.",
            ("metric",),
            registry=self.registry,
        )

        # Looking up a labelled child costs more than updating it; routes, codes and classes
        # are few, so each child is looked up once.
        self._per_request: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._per_class: dict[str, Counter] = {}

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        children = self._per_request.get((endpoint, code))
        if children is None:
            children = (self._requests.labels(endpoint, str(code)), self._duration.labels(endpoint))
            self._per_request[endpoint, code] = children
        children[0].inc()
        children[1].observe(seconds)

    def batch(self, rows: int) -> None:
        self._batch_size.observe(rows)

    def predicted(self, counts: Iterable[tuple[str, int]]) -> None:
        for label, count in counts:
            child = self._per_class.get(label)
            if child is None:
                child = self._per_class[label] = self._predictions.labels(label)
            child.inc(count)

    def model_loaded(
        self, name: str, version: str, sha256: str, runtime: str, training: Mapping[str, float]
    ) -> None:
        self._model_info.labels(name, version, sha256, runtime).set(1)
        for metric, value in training.items():
            self._model_metric.labels(metric).set(value)
