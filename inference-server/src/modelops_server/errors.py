"""What can go wrong serving a request, independent of the protocol. Each has its HTTP status
here (the REST API answers with it, and the gRPC service counts its calls by it); the message
goes to the client as is, so it says what was wrong and how to fix it."""

from __future__ import annotations


class ServingError(Exception):
    """Base of the errors a client caused or must wait out; never a server bug."""


class InvalidInput(ServingError):
    """The request is not something the model can answer: bad JSON, shape, names or values."""


class PayloadTooLarge(ServingError):
    """The body or the batch is over the configured limit."""


class ModelNotFound(ServingError):
    """The request names a model or version this server does not serve."""


class ModelNotReady(ServingError):
    """The model is not loaded (yet, or at all: the log says why)."""


class NotExplainable(ServingError):
    """The model has no explainer here; the message says why (and what would give it one)."""


class HistoryNotKept(ServingError):
    """The server has no history of the model's versions; the message says why."""


class ArtifactError(Exception):
    """The artifact directory cannot be served: missing files, bad metadata, wrong digest."""


HTTP_STATUS: dict[type[ServingError], int] = {
    InvalidInput: 400,
    ModelNotFound: 404,
    HistoryNotKept: 404,
    PayloadTooLarge: 413,
    NotExplainable: 501,
    ModelNotReady: 503,
}
