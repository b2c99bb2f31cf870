"""The server's Prometheus metrics. The names are the contract with the dashboards
(docs/inference-server.md has the table; the operator repeats them in
`modelops_operator.monitoring.metrics`), so they live here as constants.

No `model`/`namespace` label: Prometheus' scrape job adds those to every series of the pod.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# The `_created` twin of every series doubles the scrape for nothing the dashboards use.
disable_created_metrics()

# Counter {endpoint, code}: every request, by HTTP route template or gRPC method path, and HTTP
# status code (a gRPC call's is the one its error has over REST).
REQUESTS = "modelops_requests_total"
# Histogram {endpoint}: request latency in seconds.
REQUEST_DURATION = "modelops_request_duration_seconds"
# Histogram: rows per prediction request.
BATCH_SIZE = "modelops_batch_size"
# Histogram: requests predicted together in one call to scikit-learn (models that are not
# compiled; batching.py). Its count is the calls, its sum the requests they answered.
BATCHED_REQUESTS = "modelops_batched_requests"
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
BATCHED_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Predictions get a series per class for this many classes, in the order they are first
# predicted; the rows of any class after them are counted under OTHER_CLASSES. A model with
# thousands of classes then stays within the samples per scrape that Prometheus accepts from
# one pod (the operator's default sample_limit, 5,000): Prometheus drops a scrape past it whole.
MAX_CLASS_SERIES = 1000
OTHER_CLASSES = "(other classes)"


class _Histogram:
    """One histogram series' counts: per bucket (not cumulative), their sum and count."""

    __slots__ = ("buckets", "count", "sum")

    def __init__(self, bounds: int) -> None:
        self.buckets = [0] * bounds
        self.count = 0
        self.sum = 0.0

    def observe(self, bucket: int, value: float) -> None:
        if bucket < len(self.buckets):
            self.buckets[bucket] += 1
        self.count += 1
        self.sum += value

    def add_to(
        self, family: HistogramMetricFamily, labels: list[str], bounds: Sequence[float]
    ) -> None:
        cumulative = accumulate(self.buckets)
        buckets = [(floatToGoString(b), n) for b, n in zip(bounds, cumulative, strict=True)]
        family.add_metric(labels, [*buckets, ("+Inf", self.count)], self.sum)


class Metrics:
    """The server's series in a registry of their own, so tests and several apps in one process
    never share counts.

    The per-request series (requests, latency, batch sizes, batched requests, predictions) are
    counted here and read at scrape time (`collect`): prometheus_client's labelled children take
    a lock per value and loop over a histogram's buckets in Python, a sixth of the function
    calls of a one-row request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        # Counted and read on the event loop alone (the scrape route is async), so no lock.
        self._requests: dict[tuple[str, int], int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._batches = _Histogram(len(BATCH_BUCKETS))
        self._batched = _Histogram(len(BATCHED_BUCKETS))
        self._predictions: dict[str, int] = {}
        # The registry takes any object with collect().
        self.registry.register(self)

    def request(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, code)
        self._requests[key] = self._requests.get(key, 0) + 1
        duration = self._durations.get(endpoint)
        if duration is None:
            duration = self._durations[endpoint] = _Histogram(len(LATENCY_BUCKETS))
        duration.observe(bisect_left(LATENCY_BUCKETS, seconds), seconds)

    def batch(self, rows: int) -> None:
        self._batches.observe(bisect_left(BATCH_BUCKETS, rows), rows)

    def batched(self, requests: int) -> None:
        self._batched.observe(bisect_left(BATCHED_BUCKETS, requests), requests)

    def predicted(self, counts: Iterable[tuple[str, int]]) -> None:
        predictions = self._predictions
        for label, count in counts:
            if label not in predictions and len(predictions) >= MAX_CLASS_SERIES:
                label = OTHER_CLASSES
            predictions[label] = predictions.get(label, 0) + count

    def model_loaded(
        self, name: str, version: str, sha256: str, runtime: str, training: Mapping[str, float]
    ) -> None:
        self._model_info.labels(name, version, sha256, runtime).set(1)
        for metric, value in training.items():
            self._model_metric.labels(metric).set(value)

    def collect(self) -> Iterator[Metric]:
        """The per-request series as they are now."""
        requests = CounterMetricFamily(
            REQUESTS,
            "Requests by HTTP route or gRPC method, and HTTP status code.",
            labels=("endpoint", "code"),
        )
        durations = HistogramMetricFamily(
            REQUEST_DURATION,
            "Request latency in seconds, by HTTP route or gRPC method.",
            labels=("endpoint",),
        )
        batches = HistogramMetricFamily(BATCH_SIZE, "Rows per prediction request.")
        batched = HistogramMetricFamily(
            BATCHED_REQUESTS,
            "Requests predicted together in one call to scikit-learn (models not compiled).",
        )
        predictions = CounterMetricFamily(
            PREDICTIONS, "Predicted rows by class (classifiers).", labels=("class",)
        )
        for (endpoint, code), count in self._requests.items():
            requests.add_metric([endpoint, str(code)], count)
        for endpoint, histogram in self._durations.items():
            histogram.add_to(durations, [endpoint], LATENCY_BUCKETS)
        self._batches.add_to(batches, [], BATCH_BUCKETS)
        self._batched.add_to(batched, [], BATCHED_BUCKETS)
        for label, count in self._predictions.items():
            predictions.add_metric([label], count)
        yield from (requests, durations, batches, batched, predictions)
