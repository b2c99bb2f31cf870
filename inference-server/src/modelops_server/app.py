"""The REST layer: thin endpoints over the data plane, request bodies read and limited here,
every error turned into the protocol's {"error": ...} body with its status in one place."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path

from . import __version__, schemas, v2
from .dataplane import DataPlane
from .errors import HTTP_STATUS, PayloadTooLarge, ServingError
from .metrics import Metrics
from .settings import Settings

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Error} for status in (*HTTP_STATUS.values(), 422)
}
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
PAGE_FILES = ("index.html", "page.js", "page.css")
# Who may drain the server: the pod itself (its preStop hook, run in the container).
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# The preStop hook's drain is seconds long; more is a mistake.
MAX_DRAIN_SECONDS = 300
# How long connections keep closing after the hook returned: through uvicorn's graceful
# shutdown (Kubernetes' grace period is 30 s by default).
DRAIN_AFTER_HOOK_SECONDS = 60
# What a request whose client left before its body arrived is counted as (nginx's code).
CLIENT_CLOSED_REQUEST = 499
# The inference routes (InferenceRoutes).
PREDICT_PATH = "/predict"
INFER_PATH = "/v2/models/{name}/infer"
INFER_VERSION_PATH = "/v2/models/{name}/versions/{version}/infer"
EXPLAIN_PATH = "/explain"
EXPLAIN_V2_PATH = "/v2/models/{name}/explain"
EXPLAIN_V2_VERSION_PATH = "/v2/models/{name}/versions/{version}/explain"
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def create_app(
    dataplane: DataPlane,
    metrics: Metrics,
    settings: Settings,
    load_on_startup: bool = True,
    grpc: bool = False,
) -> FastAPI:
    """The app serving `dataplane`'s model. With `load_on_startup` the model is loaded in a
    thread once the server is up, so liveness answers while a large model loads. With `grpc`
    the Open Inference Protocol's gRPC service runs on `settings.grpc_port` as long as the app."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        grpc_server = None
        if grpc:
            # Imported only when served: the protocol's messages, registered under the same
            # names by a client library of the protocol (Triton's, in the tests), clash in one
            # process.
            from .grpc_api import service

            grpc_server = await service.start(dataplane, metrics, settings)
        loading = (
            asyncio.create_task(asyncio.to_thread(dataplane.load)) if load_on_startup else None
        )
        yield
        if grpc_server is not None:
            await service.stop(grpc_server)
        if loading is not None:
            await loading

    app = ServingApp(
        title="modelops inference server",
        version=__version__,
        description="Serves one trained scikit-learn model: a simple /predict API, the Open "
        "Inference Protocol v2 REST API and Prometheus /metrics. Every error is a JSON "
        '`{"error": "..."}` body.',
        lifespan=lifespan,
        responses=_ERRORS,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: off, so that nothing
        # on the model's port runs code from elsewhere. /openapi.json stays.
        docs_url=None,
        redoc_url=None,
        # OpenTelemetry stays off: /metrics is the server's telemetry, and the check whether
        # it is configured alone costs several environment lookups per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    drain = Drain()

    def request_body(model: type[schemas.BaseModel]) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}

    # The inference routes are answered in front of FastAPI (InferenceRoutes); declared here
    # for the OpenAPI document, which lists them with the app's own routes.
    inference_routes = APIRouter(responses=_ERRORS)

    @inference_routes.post(
        PREDICT_PATH,
        response_model=schemas.PredictResponse,
        openapi_extra=request_body(schemas.PredictRequest),
        summary="Predict a batch of rows",
    )
    async def predict() -> None: ...

    @inference_routes.post(
        INFER_PATH,
        response_model=schemas.InferenceResponse,
        openapi_extra=request_body(schemas.InferenceRequest),
    )
    async def infer(name: str) -> None: ...

    @inference_routes.post(
        INFER_VERSION_PATH,
        response_model=schemas.InferenceResponse,
        openapi_extra=request_body(schemas.InferenceRequest),
    )
    async def infer_version(name: str, version: str) -> None: ...

    explain_errors: dict[int | str, dict[str, Any]] = {
        501: {"model": schemas.Error, "description": "The model has no explainer"}
    }

    @inference_routes.post(
        EXPLAIN_PATH,
        response_model=schemas.ExplainResponse,
        openapi_extra=request_body(schemas.PredictRequest),
        responses=explain_errors,
        summary="Predict a batch of rows, with each feature's contribution (SHAP values)",
    )
    async def explain() -> None: ...

    @inference_routes.post(
        EXPLAIN_V2_PATH,
        response_model=schemas.ExplainInferenceResponse,
        openapi_extra=request_body(schemas.InferenceRequest),
        responses=explain_errors,
        summary="Explain: SHAP values of an infer request's rows",
    )
    async def explain_v2(name: str) -> None: ...

    @inference_routes.post(
        EXPLAIN_V2_VERSION_PATH,
        response_model=schemas.ExplainInferenceResponse,
        openapi_extra=request_body(schemas.InferenceRequest),
        responses=explain_errors,
    )
    async def explain_v2_version(name: str, version: str) -> None: ...

    @app.get("/v2/health/live", response_model=schemas.Health)
    @app.get("/healthz", response_model=schemas.Health, include_in_schema=False)
    async def live() -> Response:
        # Only that the process answers: a model that failed to load is no reason to restart.
        return _json({"live": True})

    @app.get("/v2/health/ready", response_model=schemas.Health)
    @app.get("/readyz", response_model=schemas.Health, include_in_schema=False)
    async def ready() -> Response:
        dataplane.model.features()  # raises ModelNotReady, with the reason, until loaded
        return _json({"ready": True})

    @app.get("/v2", response_model=schemas.MetadataServerResponse)
    async def server_metadata() -> Response:
        return _json(dataplane.server_metadata())

    @app.get("/v2/models/{name}", response_model=schemas.MetadataModelResponse)
    async def model_metadata(name: str) -> Response:
        return _json(dataplane.model_metadata(name, None))

    @app.get("/v2/models/{name}/versions/{version}", response_model=schemas.MetadataModelResponse)
    async def model_version_metadata(name: str, version: str) -> Response:
        return _json(dataplane.model_metadata(name, version))

    @app.get("/v2/models/{name}/ready", response_model=schemas.Health)
    async def model_ready(name: str) -> Response:
        return _readiness(dataplane.model_ready(name, None), dataplane)

    @app.get("/v2/models/{name}/versions/{version}/ready", response_model=schemas.Health)
    async def model_version_ready(name: str, version: str) -> Response:
        return _readiness(dataplane.model_ready(name, version), dataplane)

    @app.get(
        "/drain",
        response_model=schemas.Drained,
        summary="Drain before shutting down (from inside the pod only)",
        responses={403: {"model": schemas.Error, "description": "Not asked from the pod itself"}},
    )
    async def start_draining(
        request: Request,
        seconds: Annotated[float, Query(ge=0, le=MAX_DRAIN_SECONDS)] = 0,
    ) -> Response:
        """The pod's preStop hook (`modelops-drain`, run in the container): answers after
        `seconds`, and from now on every response closes its connection (see Drain). Asked
        from anywhere but the pod's own loopback it is refused: anyone who reaches the port
        could otherwise make the model close every connection, again and again."""
        if request.client is None or request.client.host not in LOOPBACK:
            return _error(403, "the drain is the pod's own preStop hook's: ask it on 127.0.0.1")
        drain.start(seconds)
        await asyncio.sleep(seconds)
        return _json({"drained": seconds})

    @app.get("/card", response_model=schemas.ModelCard, summary="The model card")
    async def card() -> Response:
        return _json(dataplane.card())

    @app.get(
        "/history",
        response_model=schemas.History,
        summary="The model's versions, and which serves since when",
        responses={404: {"model": schemas.Error, "description": "No history kept"}},
    )
    async def history() -> Response:
        return _json(dataplane.history())

    # The model's page: static files, served by the server itself (no CDN, works offline).
    page = {name: (files(__package__) / "page" / name).read_bytes() for name in PAGE_FILES}

    @app.get("/", response_class=Response, summary="The model's page, for people")
    async def index() -> Response:
        return _page(page["index.html"], "text/html; charset=utf-8")

    @app.get("/page.js", response_class=Response, include_in_schema=False)
    async def page_script() -> Response:
        return _page(page["page.js"], "text/javascript; charset=utf-8")

    @app.get("/page.css", response_class=Response, include_in_schema=False)
    async def page_style() -> Response:
        return _page(page["page.css"], "text/css; charset=utf-8")

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Every request is counted and drained: the inference routes by InferenceRoutes itself,
    # the rest by the middlewares in front of FastAPI.
    app.front = InferenceRoutes(
        RequestMetrics(ClosingWhileDraining(app.behind, drain), metrics),
        dataplane,
        settings.max_body_bytes,
        metrics,
        drain,
    )
    _map_errors(app)
    _document(app, inference_routes.routes)
    return app


def _map_errors(app: FastAPI) -> None:
    """Every error of the app's routes as a JSON body (`_error_of`, shared with InferenceRoutes)."""

    async def json_error(_: Request, exc: Exception) -> Response:
        # A ServingError with its status, anything else a 500.
        return _error(*_error_of(exc))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        answer = _error(exc.status_code, str(exc.detail))
        # A 405's Allow among them: what the client may do instead.
        answer.headers.update(exc.headers or {})
        return answer

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _error(422, problems)

    for error in HTTP_STATUS:
        app.add_exception_handler(error, json_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, json_error)


def _error_of(exc: Exception) -> tuple[int, str]:
    """The status and message an error answers with, wherever it is raised."""
    if isinstance(exc, ServingError):
        return HTTP_STATUS[type(exc)], str(exc)
    log.exception("unexpected error serving a request", exc_info=exc)
    return 500, f"internal error: {type(exc).__name__}"


def _document(app: FastAPI, inference_routes: list[BaseRoute]) -> None:
    """The OpenAPI document: the app's routes, the inference routes answered in front of it, and
    the request body models, which no endpoint declares as a parameter (they are parsed by
    hand)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=[*app.routes, *inference_routes],
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in schemas.REQUEST_BODIES:
                definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(definition.pop("$defs", {}))
                components[model.__name__] = definition
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class Drain:
    """A pod on its way out. Kubernetes stops sending it new connections while its preStop hook
    runs (GET /drain), but a client's kept-alive connection stays, and uvicorn closes it at
    SIGTERM: a request sent on it just then fails. While draining, every response closes its
    connection, so a client's next request opens one to a pod that stays. It ends by itself,
    so a stray call cannot turn keep-alive off for good."""

    def __init__(self) -> None:
        self._until = -math.inf

    def start(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds + DRAIN_AFTER_HOOK_SECONDS

    @property
    def on(self) -> bool:
        return time.monotonic() < self._until


class ServingApp(FastAPI):
    """FastAPI behind `front`: every request is counted and drained there, and the inference
    routes' POSTs are answered there too, before FastAPI's own middleware and router."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.front is None:
            await self.behind(scope, receive, send)
        else:
            await self.front(scope, receive, send)

    async def behind(self, scope: Scope, receive: Any, send: Any) -> None:
        """FastAPI itself."""
        await super().__call__(scope, receive, send)


@dataclass(frozen=True)
class _InferenceRoute:
    # The route template: RequestMetrics labels requests with it, as FastAPI's routes.
    path: str
    pattern: re.Pattern[str]
    answer: Callable[[dict[str, str], str | None, bytes], Awaitable[_Answer]]


# A response's status, content type, body and further headers.
_Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]


class InferenceRoutes:
    """The inference routes (/predict, the v2 infer routes), answered in plain ASGI in front of
    everything else: FastAPI's request and response objects, middleware, router and parameter
    solving cost more than a prediction, and even the two plain middlewares in front of it
    (RequestMetrics, ClosingWhileDraining) a tenth of a served one-row request. So the answers
    are counted and drained here, with the same Metrics and Drain; the same error answers as the
    app's (`_map_errors`); a method other than POST gets the 405 FastAPI would give."""

    def __init__(
        self,
        app: ASGIApp,
        dataplane: DataPlane,
        max_body_bytes: int,
        metrics: Metrics,
        drain: Drain,
    ) -> None:
        self._app = app
        self._dataplane = dataplane
        self._max_body_bytes = max_body_bytes
        self._metrics = metrics
        self._drain = drain
        self._routes = [
            _InferenceRoute(path, compile_path(path)[0], answer)
            for path, answer in (
                (PREDICT_PATH, self._predict),
                (INFER_PATH, self._infer),
                (INFER_VERSION_PATH, self._infer),
                (EXPLAIN_PATH, self._explain),
                (EXPLAIN_V2_PATH, self._explain_v2),
                (EXPLAIN_V2_VERSION_PATH, self._explain_v2),
            )
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for route in self._routes:
                matched = route.pattern.match(scope["path"])
                if matched is not None:
                    started = time.perf_counter()
                    answer = await self._answer(route, matched.groupdict(), scope, receive)
                    if answer is None:
                        # The client closed the request: no one to answer (nginx logs a 499).
                        status = CLIENT_CLOSED_REQUEST
                    else:
                        status = answer[0]
                        await _send(send, answer, self._drain.on)
                    self._metrics.request(route.path, status, time.perf_counter() - started)
                    return
        await self._app(scope, receive, send)

    async def _answer(
        self, route: _InferenceRoute, path_params: dict[str, str], scope: Scope, receive: Any
    ) -> _Answer | None:
        """None when the client left before its body arrived: no one to answer."""
        if scope["method"] != "POST":
            return _error_answer(405, "Method Not Allowed", [(b"allow", b"POST")])
        length = binary_length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == _BINARY_LENGTH:
                binary_length = value.decode("latin-1")
        try:
            body = await self._body(length, receive)
            if body is None:
                return None
            return await route.answer(path_params, binary_length, body)
        except Exception as exc:  # a JSON error, as the app's handlers answer (_map_errors)
            return _error_answer(*_error_of(exc))

    async def _body(self, length: str | None, receive: Any) -> bytes | None:
        limit = self._max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(_too_large(int(length), limit))
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(_too_large(size, limit))
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _predict(self, _: dict[str, str], __: str | None, body: bytes) -> _Answer:
        parsed, _binary = v2.split_body(body, None)
        answer = await self._dataplane.predict(parsed)
        return 200, _JSON, orjson.dumps(answer, option=_JSON_OPTIONS), []

    async def _explain(self, _: dict[str, str], __: str | None, body: bytes) -> _Answer:
        parsed, _binary = v2.split_body(body, None)
        answer = await self._dataplane.explain(parsed)
        return 200, _JSON, orjson.dumps(answer, option=_JSON_OPTIONS), []

    async def _infer(
        self, path_params: dict[str, str], binary_length: str | None, body: bytes
    ) -> _Answer:
        """An infer response: JSON, or with outputs asked for as binary data, the JSON header
        and their bytes after it (the binary tensor extension)."""
        parsed, binary = v2.split_body(body, binary_length)
        return _tensors(
            *await self._dataplane.infer(
                path_params["name"], path_params.get("version"), parsed, binary
            )
        )

    async def _explain_v2(
        self, path_params: dict[str, str], binary_length: str | None, body: bytes
    ) -> _Answer:
        """As an infer response, with the explanation's tensors."""
        parsed, binary = v2.split_body(body, binary_length)
        return _tensors(
            *await self._dataplane.explain_v2(
                path_params["name"], path_params.get("version"), parsed, binary
            )
        )


def _tensors(answer: dict[str, Any], blobs: list[bytes]) -> _Answer:
    """A response of output tensors: JSON, or with outputs asked for as binary data, the JSON
    header and their bytes after it (the binary tensor extension)."""
    header = orjson.dumps(answer, option=_JSON_OPTIONS)
    if not blobs:
        return 200, _JSON, header, []
    length = (_BINARY_LENGTH, str(len(header)).encode())
    return 200, b"application/octet-stream", b"".join((header, *blobs)), [length]


_JSON = b"application/json"
_BINARY_LENGTH = v2.HEADER_LENGTH.lower().encode()


def _error_answer(
    status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> _Answer:
    return status, _JSON, orjson.dumps({"error": message}), headers or []


async def _send(send: Any, answer: _Answer, closing: bool) -> None:
    """`closing`: while draining (see Drain)."""
    status, content_type, body, headers = answer
    head = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type), *headers]
    if closing:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class ClosingWhileDraining:
    """Adds `Connection: close` to every response while the server drains (plain ASGI)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self._app = app
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._drain.on:
            await self._app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, closing)


class RequestMetrics:
    """Counts and times every request by route template and status. Plain ASGI: a
    BaseHTTPMiddleware would cost more than the prediction."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, remember_status)
        finally:
            route = scope.get("route")
            # Unknown paths share one label, so scanners cannot blow up the series count.
            endpoint = getattr(route, "path", "unmatched")
            self._metrics.request(endpoint, status, time.perf_counter() - started)


def _readiness(ready: bool, dataplane: DataPlane) -> Response:
    if not ready:
        return _error(
            503, f"model {dataplane.model.name!r} is not ready: {dataplane.model.problem}"
        )
    return _json({"ready": True})


def _page(content: bytes, media_type: str) -> Response:
    # Only the page's own files run in it: nothing a model's metadata holds becomes markup.
    headers = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"}
    return Response(content, media_type=media_type, headers=headers)


def _json(content: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(content, option=_JSON_OPTIONS), status, media_type="application/json"
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _too_large(size: int, limit: int) -> str:
    return (
        f"the body is {size} bytes or more; this server takes at most {limit} "
        "(MODELOPS_MAX_BODY_BYTES): send smaller batches"
    )
