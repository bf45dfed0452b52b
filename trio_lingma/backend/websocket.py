"""The Lingma WebSocket client transport: wsproto driven directly over a trio stream.

Theory of operation
-------------------
Lingma sends each framed JSON-RPC message as one WebSocket text frame (lingma-protocol.md
§1.5) and expects the same of us. At streaming rates every push needs an answer, so the cost
per frame matters (issue 15): trio-websocket spends a task switch and a memory channel per
received message and a ``send_all`` (one syscall) per sent one.

Here the reader task that calls :meth:`WebSocketClient.receive` parses whatever one
``receive_some`` returned with wsproto and returns the text of every message completed by it,
concatenated: the JSON-RPC frame decoder reads ``Content-Length`` framing and does not care
where WebSocket messages begin or end. :meth:`WebSocketClient.send_many` encodes several
messages, each still its own WebSocket frame, and writes them with one ``send_all``.

Control frames are answered in place (a ping gets its pong, a close its close), a message over
``max_message`` bytes closes the connection with 1009, and every way the connection ends
becomes :class:`~.transport.TransportClosed` with the close described in words.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .cleanup import shielded_cleanup
from .transport import TransportClosed, describe_close

__all__ = ["HandshakeFailed", "WebSocketClient", "connect"]

RECEIVE_BYTES = 64 * 1024
MESSAGE_TOO_BIG = 1009


class HandshakeFailed(Exception):
    """The server did not accept the WebSocket upgrade."""


class WebSocketClient:
    """A client WebSocket over ``stream`` after :func:`connect` did the handshake."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, *, max_message: int) -> None:
        self._stream = stream
        self._ws = ws
        self._max_message = max_message
        self._send_lock = trio.Lock()  # the writer, and pongs/closes from the reader
        self._ready: list[str] = []  # complete messages not yet returned
        self._partial: list[str] = []  # fragments of a message still arriving
        self._partial_size = 0
        self._closed: str | None = None  # why reading ended (a close frame says it best)
        self._write_failed: str | None = None
        self._fresh = True

    def __repr__(self) -> str:
        return f"<WebSocketClient {self._ws.state.name} ready={len(self._ready)}>"

    async def send(self, text: str) -> None:
        await self.send_many([text])

    async def send_many(self, texts: list[str]) -> None:
        """Each text as its own text frame, all in one write."""
        if self._closed is not None or self._write_failed is not None:
            raise TransportClosed(self._closed or self._write_failed or "connection closed")
        try:
            data = b"".join(self._ws.send(Message(data=text)) for text in texts)
        except LocalProtocolError:
            raise TransportClosed(self._closed or "connection closed") from None
        await self._write(data)

    async def receive(self) -> str:
        """The text of every message completed by the next read (at least one)."""
        while not self._ready:
            if self._closed is not None:
                raise TransportClosed(self._closed)
            if self._fresh:  # first call: what came with the handshake's response
                self._fresh = False
            else:
                data = await self._read()
                self._ws.receive_data(data or None)
                if not data:
                    self._closed = self._closed or "connection closed (no close frame)"
            await self._handle(self._ws.events())
        text = "".join(self._ready)
        self._ready.clear()
        return text

    async def aclose(self) -> None:
        """Send a normal close if the connection is still open, then close the stream."""
        try:
            if self._ws.state is ConnectionState.OPEN:
                with shielded_cleanup(1.0):
                    await self._write(self._ws.send(CloseConnection(code=1000)))
        except TransportClosed:
            pass
        finally:
            self._closed = self._closed or "connection closed by us"
            await trio.aclose_forcefully(self._stream)

    async def _handle(self, events: Iterable[Event]) -> None:
        try:
            for event in events:
                await self._on_event(event)
        except RemoteProtocolError as exc:
            self._closed = f"connection closed: WebSocket protocol error: {exc}"
            raise TransportClosed(self._closed) from None

    async def _on_event(self, event: Event) -> None:
        match event:
            case TextMessage() | BytesMessage():
                await self._on_message(event)
            case Ping():
                await self._write(self._ws.send(event.response()))
            case CloseConnection(code=code, reason=reason):
                self._closed = describe_close(code, reason)  # first: this is why it ended
                if self._ws.state is ConnectionState.REMOTE_CLOSING and not self._send_lock.locked():
                    try:  # complete the closing handshake if we can; a writer stuck on a
                        await self._write(self._ws.send(event.response()))  # dead peer must not hold us
                    except TransportClosed:
                        pass
            case _:
                pass  # a Pong to a ping we never send

    async def _on_message(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        piece = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        self._partial.append(piece)
        self._partial_size += len(data)
        if self._partial_size > self._max_message:
            self._partial.clear()
            reason = f"message over {self._max_message} bytes"
            await self._write(self._ws.send(CloseConnection(code=MESSAGE_TOO_BIG, reason=reason)))
            self._closed = describe_close(MESSAGE_TOO_BIG, reason)
            raise TransportClosed(self._closed)
        if event.message_finished:
            self._ready.append("".join(self._partial))
            self._partial.clear()
            self._partial_size = 0

    async def _read(self) -> bytes:
        try:
            return bytes(await self._stream.receive_some(RECEIVE_BYTES))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = self._closed or f"connection closed: {exc}"
            raise TransportClosed(self._closed) from None

    async def _write(self, data: bytes) -> None:
        try:
            async with self._send_lock:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            # Not _closed: the reader may still find the peer's close frame, which says why.
            self._write_failed = self._write_failed or f"connection closed: {exc}"
            raise TransportClosed(self._closed or self._write_failed) from None


async def connect(stream: trio.abc.Stream, host: str, resource: str, *, max_message: int) -> WebSocketClient:
    """The client handshake over ``stream``; raises HandshakeFailed if not accepted."""
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        await stream.send_all(ws.send(Request(host=host, target=resource)))
        while True:
            data = bytes(await stream.receive_some(RECEIVE_BYTES))
            if not data:
                raise HandshakeFailed("the server closed the connection during the handshake")
            ws.receive_data(data)
            client = _accepted(ws, stream, max_message)
            if client is not None:
                return client
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, RemoteProtocolError) as exc:
        raise HandshakeFailed(f"handshake failed: {exc}") from None


def _accepted(ws: WSConnection, stream: trio.abc.Stream, max_message: int) -> WebSocketClient | None:
    for event in ws.events():
        if isinstance(event, RejectConnection):
            raise HandshakeFailed(f"the server refused the upgrade with status {event.status_code}")
        if isinstance(event, AcceptConnection):
            # Frames that came with the 101 response stay in wsproto for the first receive().
            return WebSocketClient(stream, ws, max_message=max_message)
    return None
