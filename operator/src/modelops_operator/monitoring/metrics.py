"""The inference server's Prometheus metrics, as the dashboards query them.

The server (`modelops_server`) defines them; the operator must not import the server, so the
names are repeated here and the end-to-end test scrapes a real server to keep both in step.
"""

# Counter {endpoint, code}: every request, by HTTP route template or gRPC method, and status code.
REQUESTS = "modelops_requests_total"
# Histogram {endpoint}: request latency in seconds.
REQUEST_DURATION = "modelops_request_duration_seconds"
# Histogram: rows per prediction request.
BATCH_SIZE = "modelops_batch_size"
# Histogram: requests predicted together in one call to scikit-learn (models not compiled).
BATCHED_REQUESTS = "modelops_batched_requests"
# Counter {class}: predicted rows per class (classifiers only).
PREDICTIONS = "modelops_predictions_total"
# Gauge {name, version, sha256} = 1: the model being served.
MODEL_INFO = "modelops_model_info"
# Gauge {metric}: the held-out training metrics of the model being served.
MODEL_METRIC = "modelops_model_metric"

# `endpoint` values (route templates) of the prediction routes: REST and Open Inference
# Protocol v2. Latency is shown for these alone; probes and scrapes would flatter it.
PREDICTION_ENDPOINTS = "/predict|/v2/models/.+/infer"
