"""The quart-trio application factory.

``create_app(settings)`` has no side effects: the gateway's instances start in quart-trio's
lifespan nursery (``app.nursery``) when serving begins, so ``hypercorn --worker-class trio``
and ``trio-lingma serve`` run the same task tree (style.md §13).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, has_websocket_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..backend.gateway import Gateway
from ..errors import ClientError, GatewayError, NotFound, RequestTooLarge, shorten
from ..observability.access import observe_turn
from ..observability.logs import current_request_id
from ..observability.metrics import Metrics
from ..observability.tasks import log_tree_on_signal
from ..observability.usage import UsageLedger
from ..protocol.tokens import count_text
from ..settings import Settings
from . import admin, anthropic_api, health, openai_api, responses_api, served
from .common import StreamingHTTPConnection

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: Every blueprint, with the URL prefix whose errors raised outside routes (404 of unknown
#: paths, 405, 413 from the body limit) it renders, and its renderer; the longest matching
#: prefix wins. Explicit, no import magic.
BLUEPRINTS: tuple[tuple[Blueprint, str | None, Callable[[GatewayError], Response] | None], ...] = (
    (health.blueprint, None, None),
    (admin.blueprint, None, None),
    (anthropic_api.blueprint, "/v1/messages", anthropic_api.render_error),
    (responses_api.blueprint, None, None),  # under "/": errors outside routes in OpenAI's shape
    (openai_api.blueprint, "/", openai_api.render_error),
)


def create_app(settings: Settings | None = None) -> QuartTrio:
    """Build the app. Nothing starts until the app is served."""
    settings = settings or Settings.from_env()
    app = QuartTrio(__name__)
    app.asgi_http_class = StreamingHTTPConnection  # closes a stream body quart never entered
    # Quart cuts streaming bodies after RESPONSE_TIMEOUT (60 s by default): our own layered
    # deadlines bound every request instead (REQUEST_TIMEOUT).
    app.config.update(
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=settings.body_timeout,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep each API's field order
    gateway = Gateway(settings)
    app.extensions["trio_lingma.gateway"] = gateway
    app.extensions["trio_lingma.settings"] = settings
    app.extensions["trio_lingma.metrics"] = metrics = Metrics(gateway.statistics)
    app.extensions["trio_lingma.usage"] = usage = UsageLedger()
    gateway.observers.append(metrics.observe_turn)
    gateway.observers.append(usage.observe_turn)

    gateway.observers.append(observe_turn)
    served.install(app, settings)  # request ids, access log, connection hygiene (http/served.py)

    for blueprint, _, _ in BLUEPRINTS:
        app.register_blueprint(blueprint)

    @app.before_serving
    async def _start() -> None:
        app.nursery.start_soon(log_tree_on_signal, name="SIGUSR1 task-tree dump")
        await app.nursery.start(gateway.serve, name="gateway")
        # load the tokenizer now (~0.3 s of CPU), not in the first request, and while the runtimes
        # the gateway just spawned start up, not before
        count_text("warm-up")
        if not await gateway.wait_ready(settings.start_timeout):
            log.error("no Lingma instance became ready within %.0f s; /readyz reports why",
                      settings.start_timeout)

    @app.before_request
    async def _start_clock() -> None:
        request.started_at = time.perf_counter()  # type: ignore[attr-defined]

    @app.after_request
    async def _count(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        protocol = request.blueprint or "none"
        metrics.requests.labels(protocol, rule, str(response.status_code)).inc()
        started = getattr(request, "started_at", None)
        if started is not None:  # for streams: time to headers; the body is timed by the core
            metrics.latency.labels(protocol, rule).observe(time.perf_counter() - started)
        return response

    @app.after_request
    async def _close_after_early_errors(response: Response) -> Response:
        # An error can go out before the request body arrived (auth, size checks); hypercorn
        # cannot reuse such a connection and closes it (http/served.py makes sure it can), so
        # the client is told: ``Connection: close`` after any error to a request with a body.
        has_body = (request.content_length or 0) > 0 or "chunked" in request.headers.get(
            "transfer-encoding", "").lower()
        if response.status_code >= 400 and has_body:
            response.headers["Connection"] = "close"
        return response

    @app.after_request
    async def _request_id(response: Response) -> Response:
        rid = current_request_id()
        response.headers.setdefault("x-request-id", rid)
        response.headers.setdefault("request-id", rid)
        return response

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Any:
        return _render_for_path(_as_gateway_error(exc))

    return app


def _as_gateway_error(exc: HTTPException) -> GatewayError:
    if has_websocket_context():
        # The gateway has no WebSocket route, so every upgrade ends here (as a 404 or 405) in a
        # websocket context, where ``request`` is unbound; quart sends our response as the
        # handshake's HTTP answer.
        return NotFound(f"No WebSocket endpoint at {shorten(websocket.path)}: this gateway speaks HTTP only.")
    if exc.code == 413:
        return RequestTooLarge("Request body is too large.")
    if exc.code == 404:
        return NotFound(f"No route for {request.method} {shorten(request.path)}.")
    error = ClientError(exc.description or exc.name)
    error.status = exc.code or 400  # type: ignore[misc]
    return error


def _render_for_path(exc: GatewayError) -> Any:
    path = websocket.path if has_websocket_context() else request.path
    return error_renderer(path)(exc)


def error_renderer(path: str) -> Callable[[GatewayError], Response]:
    """The renderer of the longest prefix in BLUEPRINTS that ``path`` is under."""
    matches = [(len(prefix), render) for _, prefix, render in BLUEPRINTS
               if prefix is not None and render is not None and _under(path, prefix)]
    return max(matches, key=lambda m: m[0])[1]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
