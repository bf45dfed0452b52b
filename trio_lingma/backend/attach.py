"""Attach mode: each life of an instance connects to a runtime somebody else runs.

Theory of operation
-------------------
:func:`attach_connector` returns a :data:`~trio_lingma.backend.instance.Connector`, the seam an
:class:`~trio_lingma.backend.instance.Instance` already has for lives without a process. Every
life discovers the runtime afresh (:mod:`.discovery`: ``LINGMA_WS_URL``, the
``LINGMA_SHARED_CLIENT_INFO`` file or the SharedClientCache search), because an IDE that
restarts its runtime writes a new port; a runtime that is gone makes the life fail with a
clear message, and the instance's usual backoff retries. Because the instance owns no process
on this path, it never sends the runtime LSP ``shutdown``/``exit``: the IDE's runtime outlives
the gateway.

We open the TCP stream ourselves and wrap it (``trio_websocket.wrap_client_stream``) so that
we can always close it: trio-websocket 0.12's client leaks its socket when the server closes
first.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
import trio_websocket

from ..errors import UpstreamUnavailable
from ..settings import Settings
from .discovery import RuntimeEndpoint, discover_from_settings
from .transport import Transport, WebSocketTransport

__all__ = ["attach_connector", "open_websocket_transport"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024
QUEUE = 1024


@asynccontextmanager
async def open_websocket_transport(url: str, *, source: str = "") -> AsyncIterator[Transport]:
    """A :class:`WebSocketTransport` to ``url`` whose socket is always closed on exit."""
    parts = urlsplit(url)
    host, secure = parts.hostname or "127.0.0.1", parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += f"?{parts.query}"
    where = f"{url} (from {source})" if source else url
    try:
        stream = await _open_stream(host, port, secure)
    except OSError as exc:
        raise UpstreamUnavailable(f"cannot connect to the Lingma runtime at {where}: {exc}") from None
    try:
        async with trio.open_nursery() as nursery:
            try:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, host, resource, message_queue_size=QUEUE, max_message_size=MAX_MESSAGE)
            except trio_websocket.HandshakeError as exc:
                raise UpstreamUnavailable(f"{where} did not accept a WebSocket: {exc!r}") from None
            try:
                yield WebSocketTransport(ws)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


async def _open_stream(host: str, port: int, secure: bool) -> trio.abc.Stream:
    if secure:
        return await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl.create_default_context())
    return await trio.open_tcp_stream(host, port)


def attach_connector(
    settings: Settings, *, discover: Callable[[Settings], RuntimeEndpoint] = discover_from_settings,
) -> Callable[[Any], AbstractAsyncContextManager[Transport]]:
    """A connector for ``Instance(..., connector=...)`` that attaches to a running runtime."""

    @asynccontextmanager
    async def connect(instance: Any) -> AsyncIterator[Transport]:
        endpoint = discover(settings)
        log.info("%s: attaching to the runtime at %s (pid %s, from %s)", getattr(instance, "name", "lingma"),
                 endpoint.ws_url, endpoint.pid, endpoint.source)
        async with open_websocket_transport(endpoint.ws_url, source=endpoint.source) as transport:
            yield transport

    return connect
