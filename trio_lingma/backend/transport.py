"""The transport seam under the Lingma client: text frames in, text frames out.

:func:`open_websocket_transport` is the real one: it opens the TCP stream itself (so it can
always close it) and speaks WebSocket with :class:`~.websocket.WebSocketClient` (wsproto
driven directly: batched writes and reads, issue 15). :class:`WebSocketTransport` wraps a
trio-websocket connection (tests drive the simulator with it); :func:`memory_transport_pair`
connects two in-memory ends so client tests need no socket or process. Closing errors are
translated here, at the boundary, into :class:`TransportClosed`.

``receive`` returns the text of at least one whole message; a transport may return several
concatenated (the JSON-RPC framing inside does not depend on message boundaries).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

import trio
import trio_websocket
from wsproto.frame_protocol import CloseReason

from ..errors import UpstreamUnavailable
from .cleanup import shielded_cleanup

__all__ = [
    "MemoryTransport",
    "Transport",
    "TransportClosed",
    "is_message_refused",
    "describe_close",
    "WebSocketTransport",
    "memory_transport_pair",
    "open_websocket_transport",
]

MAX_MESSAGE = 64 * 1024 * 1024


class TransportClosed(Exception):
    """The other end went away (process died, socket closed)."""


def is_message_refused(reason: str) -> bool:
    """Whether a close described by :func:`describe_close` was the runtime refusing a message of
    ours as too big (WebSocket 1009): the same message would be refused anywhere."""
    return _REFUSED in reason


class Transport(Protocol):
    async def send(self, text: str) -> None: ...

    async def send_many(self, texts: list[str]) -> None:
        """Send each text as its own frame, in order (one write where the transport can)."""

    async def receive(self) -> str: ...

    async def aclose(self) -> None: ...


class WebSocketTransport:
    """One Lingma WebSocket connection; each framed message is one text frame."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)

    async def receive(self) -> str:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def ping(self) -> None:
        """A WebSocket-level ping (detects a frozen peer, which raises nothing by itself)."""
        try:
            await self._ws.ping()
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from None

    async def aclose(self) -> None:
        await self._ws.aclose()


def _closed(exc: trio_websocket.ConnectionClosed) -> TransportClosed:
    """Plain words for a WebSocket close (never ``CloseReason<…>``, which reaches error bodies)."""
    close = exc.reason
    if close is None:
        return TransportClosed("connection closed")
    return TransportClosed(describe_close(close.code, close.reason))


_REFUSED = f"(WebSocket code {int(CloseReason.MESSAGE_TOO_BIG)}"


def describe_close(code: int, reason: str | None) -> str:
    """A WebSocket close code (and reason) in words, e.g. ``... (WebSocket code 1006, abnormal closure)``."""
    try:
        name = CloseReason(code).name.lower().replace("_", " ")
    except ValueError:
        name = ""
    why = f"connection closed (WebSocket code {code}{', ' + name if name else ''})"
    if code == CloseReason.MESSAGE_TOO_BIG:
        why += ": the runtime refused a message over its size limit (see LINGMA_MAX_MESSAGE_BYTES)"
    return f"{why}: {reason}" if reason else why


class MemoryTransport:
    """One end of an in-memory transport pair."""

    def __init__(self, send: trio.MemorySendChannel[str], receive: trio.MemoryReceiveChannel[str]) -> None:
        self._send = send
        self._receive = receive

    async def send(self, text: str) -> None:
        try:
            await self._send.send(text)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportClosed("peer closed") from None

    async def send_many(self, texts: list[str]) -> None:
        for text in texts:
            await self.send(text)

    async def receive(self) -> str:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed("peer closed") from None

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def memory_transport_pair(buffer: int = 1024) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory ends (client, server)."""
    a_send, b_receive = trio.open_memory_channel[str](buffer)
    b_send, a_receive = trio.open_memory_channel[str](buffer)
    return MemoryTransport(a_send, a_receive), MemoryTransport(b_send, b_receive)


@asynccontextmanager
async def open_websocket_transport(url: str, *, source: str = "") -> AsyncIterator[Transport]:
    """A WebSocket transport to ``url`` (:mod:`.websocket`) whose socket is always closed on exit."""
    from .websocket import HandshakeFailed, connect  # it builds on this module's seam

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
        try:
            client = await connect(stream, host, resource, max_message=MAX_MESSAGE)
        except HandshakeFailed as exc:
            raise UpstreamUnavailable(f"{where} did not accept a WebSocket: {exc}") from None
        try:
            yield client
        finally:
            with shielded_cleanup(1.0):
                await client.aclose()
    finally:
        await trio.aclose_forcefully(stream)


async def _open_stream(host: str, port: int, secure: bool) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if secure:
        return await trio.open_ssl_over_tcp_stream(host, port, ssl_context=ssl.create_default_context())
    return await trio.open_tcp_stream(host, port)
