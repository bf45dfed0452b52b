"""The ASGI layer between the server (hypercorn) and the quart-trio app: what a request is owed
before and after the app sees it — its request id and access-log line, an honest end of its
connection, the connection cap, and the refusal of open access from a public address.

``create_app`` installs it as ``app.asgi_app``, so ``trio-lingma serve`` and
``hypercorn --worker-class trio trio_lingma.asgi:app`` both run through it.

Theory of operation: why the last send is shielded
--------------------------------------------------
hypercorn does its connection bookkeeping inside the app's ``send``: the message that ends a
response (``http.response.body`` without ``more_body``) makes hypercorn's h11 protocol report
the stream closed, which delivers ``http.disconnect`` to the app and then either recycles the
connection (and starts its keep-alive idle timer) or closes it (``Connection: close``, a body
the app never read, HTTP/1.0). quart-trio (0.12) serves a request in a nursery that it cancels
as soon as it receives ``http.disconnect`` — and the task still inside that ``send`` is in that
nursery. So hypercorn's bookkeeping runs in a cancelled scope: ``send_eof()`` raises
``Cancelled``, the socket stays open, no idle timer starts, and every keep-alive connection
lives until the client closes it (issue 14: 1,011 such connections hit ``ulimit -n`` 1024).
Shielding that one send lets hypercorn finish. It adds no unbounded wait: hypercorn already
shields its socket writes, and what follows them (``send_eof``, ``aclose``, starting a timer)
does not block.

A second gap shows once the timer runs: hypercorn's trio ``TCPServer`` keeps a connection's
task, and its socket, until the keep-alive timer fires even when the client closed the idle
connection (its asyncio worker stops the timer in ``_close``); ``install`` makes the end of the
read loop stop the timer (:func:`patch_tcp_server`), so a closed connection is released at once.
The same patch bounds writes to a client that stopped reading (``SEND_TIMEOUT``).

Theory of operation: counting connections
-----------------------------------------
ASGI has no connection events, but trio's structure shows them: hypercorn serves each TCP
connection in one task (``trio.serve_listeners``' handler) and runs the app for each request in
a task of a nursery that this connection task opened. So the parent task of the app task's
nursery *is* the connection, and that task's exit — seen by a trio ``Instrument`` — is the
connection's close. A connection is counted from its first request until it closes; when
``MAX_CONNECTIONS`` are counted, a request on a new connection gets 503 with ``Retry-After``
and ``Connection: close`` (as uvicorn's ``--limit-concurrency`` does), so it costs a descriptor
only for that one answer. Probes (``/healthz``, ``/readyz``) and the operator's endpoints
(``/metrics``, ``/admin/*``, ``/debug/tasks``) are still answered — the operator needs them most
when the cap is reached — also with ``Connection: close``.
"""

from __future__ import annotations

import logging
import resource
import socket
import time
from collections.abc import Mapping
from typing import Any, cast

import attrs
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from quart import Response, request
from quart_trio import QuartTrio

from ..errors import GatewayError, Overloaded, PermissionDenied
from ..observability.access import (
    MAX_ERROR_BODY,
    Exchange,
    current_exchange,
    error_summary,
    format_line,
    start_exchange,
)
from ..observability.access import log as access_log
from ..observability.logs import new_request_id, set_request_id
from ..settings import Settings, is_loopback

__all__ = ["ConnectionStatistics", "ConnectionTable", "ServedApp", "connection_limit", "install", "patch_tcp_server"]

log = logging.getLogger(__name__)

PROBES = frozenset({"health"})  # blueprint names
OPERATOR = frozenset({"admin"})

#: Descriptors left for everything but client connections (runtimes, their WebSockets, logs)
#: when MAX_CONNECTIONS is 0 (automatic).
RESERVED_FDS = 256


def connection_limit(setting: int) -> int:
    """MAX_CONNECTIONS, or (0) the open-file limit less :data:`RESERVED_FDS`, at least 16."""
    if setting > 0:
        return setting
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65536
    return max(16, soft - RESERVED_FDS)


@attrs.frozen
class ConnectionStatistics:
    """A snapshot of the :class:`ConnectionTable` (for /metrics)."""

    open: int
    limit: int
    refused: int  # new connections over the limit since start (their requests: 503, probes spared)


class ConnectionTable(trio.abc.Instrument):
    """The client connections that have made a request and are still open, by serving task.

    Install it with ``trio.lowlevel.add_instrument`` in the run that serves the app."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[trio.lowlevel.Task, None] = {}
        self._refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: trio.lowlevel.Task) -> bool:
        """Count ``connection`` (once); False when it is new and the table is full."""
        if connection in self._open:
            return True
        if len(self._open) >= self.limit:
            self._refused += 1
            return False
        self._open[connection] = None
        return True

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(open=len(self._open), limit=self.limit, refused=self._refused)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self._open.pop(task, None)


def _connection_task() -> trio.lowlevel.Task | None:
    """The task serving this request's connection (see the module's theory of operation)."""
    nursery = trio.lowlevel.current_task().parent_nursery
    return nursery.parent_task if nursery is not None else None


class ServedApp:
    """Wraps the app's ASGI callable; see the module docstring."""

    def __init__(self, app: Any, settings: Settings, connections: ConnectionTable) -> None:
        self._app = app
        self._settings = settings
        self._access_log = settings.access_log
        self.connections = connections
        self._open_ok: dict[str, bool] = {}  # server address → may be served without keys

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)  # lifespan
            return
        fields = cast(Mapping[str, Any], scope)
        set_request_id(new_request_id(_header(fields, b"x-request-id")))
        method = fields.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        exchange = start_exchange(method, fields.get("path", ""))
        exchange.refusal, exchange.spared = self._refusal(fields)
        started = time.perf_counter()
        try:
            await self._app(scope, receive, _Sender(send, exchange))
        finally:
            if self._access_log and access_log.isEnabledFor(logging.INFO):
                access_log.info("%s", format_line(exchange, time.perf_counter() - started))

    def _refusal(self, scope: Mapping[str, Any]) -> tuple[GatewayError | None, frozenset[str]]:
        """What to answer instead of routing (if anything), and the blueprints spared."""
        server = scope.get("server")
        if server and not self._may_serve_open(str(server[0])):
            return PermissionDenied(
                f"This gateway has no API_KEYS and was reached on the non-loopback address {server[0]}: "
                "set API_KEYS, or ALLOW_OPEN=true to serve it open on purpose."), PROBES
        connection = _connection_task()
        if connection is not None and not self.connections.admit(connection):
            return Overloaded(f"Too many open connections (MAX_CONNECTIONS={self.connections.limit}); "
                              "retry shortly.", retry_after=1), PROBES | OPERATOR
        return None, frozenset()

    def _may_serve_open(self, host: str) -> bool:
        ok = self._open_ok.get(host)
        if ok is None:
            ok = bool(self._settings.api_keys) or self._settings.allow_open or is_loopback(host)
            self._open_ok[host] = ok
            if not ok:
                log.error("reached on the non-loopback address %s with no API_KEYS: refusing every "
                          "request but /healthz and /readyz (set API_KEYS, or ALLOW_OPEN=true)", host)
        return ok


class _Sender:
    """The ``send`` the app gets: notes status and error body, shields the final message."""

    __slots__ = ("_body", "_exchange", "_send")

    def __init__(self, send: ASGISendCallable, exchange: Exchange) -> None:
        self._send = send
        self._exchange = exchange
        self._body: bytearray | None = None  # an error body being collected

    async def __call__(self, message: ASGISendEvent) -> None:
        fields = cast(Mapping[str, Any], message)
        kind = fields["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            self._started(fields)
        elif kind in ("http.response.body", "websocket.http.response.body"):
            if self._body is not None and len(self._body) < MAX_ERROR_BODY:
                self._body += fields.get("body", b"")
            if not fields.get("more_body", False):
                self._finished()
                with trio.CancelScope(shield=True):  # see "why the last send is shielded"
                    await self._send(message)
                return
        await self._send(message)

    def _started(self, message: Mapping[str, Any]) -> None:
        status = int(message["status"])
        self._exchange.status = status
        content_type = dict(message.get("headers", ())).get(b"content-type", b"")
        self._exchange.stream = content_type.startswith(b"text/event-stream")
        if status >= 400:
            self._body = bytearray()

    def _finished(self) -> None:
        self._exchange.finished = True
        if self._body is not None:
            self._exchange.error = error_summary(bytes(self._body))


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def patch_tcp_server(send_timeout: float) -> None:
    """Two fixes to hypercorn 0.18's trio ``TCPServer``, made where its read loop starts and ends
    (the one place an idle connection's socket and end are in reach; ASGI sees neither):

    * release on EOF: when the read loop ends (the client closed, or the connection broke) the
      keep-alive timer is stopped — nothing is left to time out, and the timer would hold the
      connection's task and socket until it fired (hypercorn's asyncio worker stops it in
      ``_close``);
    * send timeout: the socket gets ``TCP_USER_TIMEOUT`` = ``send_timeout`` (Linux), so a client
      that stops reading a response loses its connection once nothing was acknowledged for that
      long — hypercorn shields its socket writes, so no deadline of ours could end such a write,
      and the request would hold its capacity ticket for as long as the client liked.

    Idempotent (a later call only changes the timeout); a hypercorn without
    ``TCPServer._read_data`` is left alone, with a warning."""
    from hypercorn.trio.tcp_server import TCPServer

    read_data = getattr(TCPServer, "_read_data", None)
    if read_data is None:
        log.warning("hypercorn's trio TCPServer has no _read_data: closed idle connections are released "
                    "only after KEEP_ALIVE_TIMEOUT, and SEND_TIMEOUT is not applied")
        return
    if hasattr(read_data, "send_timeout"):
        read_data.send_timeout = send_timeout
        return

    async def _read_data(self: Any) -> None:
        _set_user_timeout(self.stream, _read_data.send_timeout)  # type: ignore[attr-defined]
        await read_data(self)
        idle_task = getattr(self, "idle_task", None)  # hypercorn 0.18's TrioSingleTask
        if idle_task is not None:
            await idle_task.stop()

    _read_data.send_timeout = send_timeout  # type: ignore[attr-defined]
    TCPServer._read_data = _read_data  # type: ignore[method-assign]


def _set_user_timeout(stream: Any, seconds: float) -> None:
    sock = getattr(getattr(stream, "transport_stream", stream), "socket", None)  # TLS or plain
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is None or option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))
    except OSError:
        pass  # not a TCP socket after all: nothing to bound


def install(app: QuartTrio, settings: Settings) -> ServedApp:
    """Wrap ``app``'s ASGI callable and add the hooks that act on the layer's decisions."""
    patch_tcp_server(settings.send_timeout)
    connections = ConnectionTable(connection_limit(settings.max_connections))
    served = ServedApp(app.asgi_app, settings, connections)
    app.asgi_app = served  # type: ignore[method-assign]  # quart's documented middleware hook
    if "trio_lingma.metrics" in app.extensions:
        app.extensions["trio_lingma.metrics"].watch_connections(connections.statistics)

    @app.before_serving
    async def _count_connections() -> None:
        trio.lowlevel.add_instrument(connections)

    @app.after_serving
    async def _stop_counting() -> None:
        trio.lowlevel.remove_instrument(connections)

    @app.before_request
    async def _refuse() -> None:
        exchange = current_exchange()
        if exchange is not None and exchange.refusal is not None and request.blueprint not in exchange.spared:
            raise exchange.refusal

    @app.after_request
    async def _note(response: Response) -> Response:
        exchange = current_exchange()
        if exchange is not None:
            exchange.route = request.url_rule.rule if request.url_rule else None
            if exchange.refusal is not None:
                response.headers["Connection"] = "close"
        return response

    return served
