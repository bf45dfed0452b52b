"""The Lingma WebSocket client transport: our own framing (:mod:`.wsframes`) over a trio stream.

Theory of operation
-------------------
Lingma sends each framed JSON-RPC message as one WebSocket text frame (lingma-protocol.md
§1.5) and expects the same of us. At streaming rates every push needs an answer, so the cost
per frame matters (issue 15): trio-websocket spends a task switch and a memory channel per
received message and a ``send_all`` (one syscall) per sent one.

Here the reader task that calls :meth:`WebSocketClient.receive` parses whatever one
``receive_some`` returned (:class:`~.wsframes.FrameReader`) and returns the text of every
message completed by it,
concatenated: the JSON-RPC frame decoder reads ``Content-Length`` framing and does not care
where WebSocket messages begin or end. :meth:`WebSocketClient.send_many` encodes several
messages, each still its own masked WebSocket frame (keys from a pool: one ``os.urandom`` per 1,024),
and writes them with one ``send_all``. The opening handshake is HTTP/1.1 through h11.

Control frames are answered in place (a ping gets its pong, a close its close), a message over
``max_message`` bytes closes the connection with 1009, and every way the connection ends
becomes :class:`~.transport.TransportClosed` with the close described in words.
"""

from __future__ import annotations

import base64
import hashlib
import os

import h11
import trio

from . import wsframes
from .cleanup import shielded_cleanup
from .transport import TransportClosed, describe_close

__all__ = ["HandshakeFailed", "WebSocketClient", "connect"]

RECEIVE_BYTES = 64 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


class HandshakeFailed(Exception):
    """The server did not accept the WebSocket upgrade."""


class WebSocketClient:
    """A client WebSocket over ``stream`` after :func:`connect` did the handshake."""

    def __init__(self, stream: trio.abc.Stream, *, max_message: int, trailing: bytes = b"") -> None:
        self._stream = stream
        self._reader = wsframes.FrameReader(max_message)
        self._send_lock = trio.Lock()  # the writer, and pongs/closes from the reader
        self._pending = trailing  # frames that came with the handshake's response
        self._closed: str | None = None  # why reading ended (a close frame says it best)
        self._write_failed: str | None = None
        self._close_sent = False
        self._keys, self._key_at = b"", 0

    def __repr__(self) -> str:
        return f"<WebSocketClient closed={self._closed!r}>"

    async def send(self, text: str) -> None:
        await self.send_many([text])

    async def send_many(self, texts: list[str]) -> None:
        """Each text as its own text frame, all in one write."""
        if self._closed is not None or self._write_failed is not None or self._close_sent:
            raise TransportClosed(self._closed or self._write_failed or "connection closed")
        data = b"".join(wsframes.encode(wsframes.TEXT, text.encode("utf-8"), self._key()) for text in texts)
        await self._write(data)

    def _key(self) -> bytes:
        """A fresh masking key, from a pool drawn 1,024 keys at a time (one syscall, not one per frame)."""
        if self._key_at >= len(self._keys):
            self._keys, self._key_at = os.urandom(4096), 0
        self._key_at += 4
        return self._keys[self._key_at - 4: self._key_at]

    async def receive(self) -> str:
        """The text of every message completed by the next read (at least one)."""
        texts: list[str] = []
        while not texts:
            if self._closed is not None:
                raise TransportClosed(self._closed)
            data, self._pending = self._pending or await self._read(), b""
            if not data:
                self._closed = "connection closed (no close frame)"
                continue
            try:
                frames = self._reader.feed(data)
            except wsframes.ProtocolViolation as exc:
                await self._fail(exc.code, exc.reason)
            for opcode, payload in frames:
                await self._on_frame(opcode, payload, texts)
        return "".join(texts)

    async def aclose(self) -> None:
        """Send a normal close if none was exchanged yet, then close the stream."""
        try:
            if self._closed is None and not self._close_sent:
                with shielded_cleanup(1.0):
                    await self._send_close(1000, "")
        except TransportClosed:
            pass
        finally:
            self._closed = self._closed or "connection closed by us"
            await trio.aclose_forcefully(self._stream)

    async def _on_frame(self, opcode: int, payload: bytes, texts: list[str]) -> None:
        if opcode in (wsframes.TEXT, wsframes.BINARY):
            texts.append(payload.decode("utf-8", "replace"))
        elif opcode == wsframes.PING:
            await self._write(wsframes.encode(wsframes.PONG, payload, self._key()))
        elif opcode == wsframes.CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._closed = describe_close(code, payload[2:].decode("utf-8", "replace"))  # first: the why
            if not self._close_sent and not self._send_lock.locked():
                try:  # complete the closing handshake if we can; a writer stuck on a dead
                    await self._send_close(code if code != 1005 else 1000, "")  # peer must not hold us
                except TransportClosed:
                    pass
            if texts:  # messages before the close still count; the next receive raises
                return
            raise TransportClosed(self._closed)

    async def _fail(self, code: int, reason: str) -> None:
        self._closed = describe_close(code, reason)
        try:
            await self._send_close(code, reason)
        except TransportClosed:
            pass
        raise TransportClosed(self._closed)

    async def _send_close(self, code: int, reason: str) -> None:
        self._close_sent = True
        payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
        await self._write(wsframes.encode(wsframes.CLOSE, payload, self._key()))

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
    """The client's opening handshake (RFC 6455 §4.1) over ``stream``; HandshakeFailed if refused."""
    key = base64.b64encode(os.urandom(16))
    http = h11.Connection(h11.CLIENT)
    headers = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key.decode()), ("Sec-WebSocket-Version", "13")]
    try:
        await stream.send_all(http.send(h11.Request(method="GET", target=resource, headers=headers)) or b"")
        while (event := http.next_event()) is h11.NEED_DATA:
            http.receive_data(bytes(await stream.receive_some(RECEIVE_BYTES)))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, h11.ProtocolError) as exc:
        raise HandshakeFailed(f"handshake failed: {exc}") from None
    if not isinstance(event, h11.InformationalResponse | h11.Response) or event.status_code != 101:
        status = getattr(event, "status_code", None)
        raise HandshakeFailed(f"the server refused the upgrade with status {status}")
    expected = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    if dict(event.headers).get(b"sec-websocket-accept") != expected:
        raise HandshakeFailed("the server answered with a wrong Sec-WebSocket-Accept")
    return WebSocketClient(stream, max_message=max_message, trailing=http.trailing_data[0])
