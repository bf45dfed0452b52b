"""What one simulated connection runs over: a WebSocket, or a unix socket's byte stream.

Theory of operation
-------------------
:class:`~._connection.Connection` needs four things of its link: read the next message, send
one, drop the link, and say who is on the other end. :class:`WsChannel` gives them over a
trio-websocket connection (one framed message per text frame; trio-websocket enforces the size
limit and closes with 1009). :class:`IpcChannel` gives them over a byte stream (the desktop's
IPC endpoint, lingma-protocol.md §1.5): reads are split into whole framed messages by the same
:class:`~trio_lingma.protocol.jsonrpc.FrameDecoder` the peer uses, so the size limit can be
enforced per message as a runtime's reader does — a message over it ends the connection.
Unframed bytes are handed on as they are, so the peer logs ``Unknown message header`` as on
the WebSocket. Both raise :class:`ChannelClosed` when the other end is gone.
"""

from __future__ import annotations

from typing import Protocol

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ..protocol.jsonrpc import FrameDecoder, FramingError, encode_frame

__all__ = ["Channel", "ChannelClosed", "IpcChannel", "WsChannel"]

READ_SIZE = 65536


class ChannelClosed(Exception):
    """The client went away (or was dropped)."""


class Channel(Protocol):
    @property
    def remote(self) -> str: ...

    async def get_message(self) -> str | bytes: ...

    async def send_message(self, text: str) -> None: ...

    async def abort(self, reason: str) -> None: ...


class WsChannel:
    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    @property
    def remote(self) -> str:
        return str(self._ws.remote)

    async def get_message(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except ConnectionClosed as exc:
            raise ChannelClosed(_words(exc)) from None

    async def send_message(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except ConnectionClosed as exc:
            raise ChannelClosed(_words(exc)) from None

    async def abort(self, reason: str) -> None:
        await self._ws.aclose(code=1011, reason=reason)


def _words(exc: ConnectionClosed) -> str:
    close = exc.reason
    return f"closed with code {close.code} ({close.name})" if close is not None else "closed"


class IpcChannel:
    def __init__(self, stream: trio.SocketStream, *, max_message_bytes: int) -> None:
        self._stream = stream
        self._max = max_message_bytes
        self._decoder = FrameDecoder()

    @property
    def remote(self) -> str:
        return "unix socket"

    async def get_message(self) -> str | bytes:
        """The next whole framed message(s) read, or raw bytes that are not framed."""
        while True:
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise ChannelClosed("the socket broke") from None
            if not data:
                raise ChannelClosed("end of stream")
            try:
                bodies = self._decoder.feed(data)
            except FramingError:
                return data  # the peer reports it, like an unframed WebSocket frame
            await self._check_size(bodies)
            if bodies:
                return "".join(encode_frame(body) for body in bodies)

    async def _check_size(self, bodies: list[bytes]) -> None:
        too_big = [len(body) for body in bodies if len(body) > self._max]
        if too_big or self._decoder.buffered > self._max + 64:
            size = too_big[0] if too_big else self._decoder.buffered
            await self._stream.aclose()
            raise ChannelClosed(f"read limit exceeded: a {size}-byte message, over {self._max} bytes")

    async def send_message(self, text: str) -> None:
        try:
            await self._stream.send_all(text.encode("utf-8"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ChannelClosed("the socket broke") from None

    async def abort(self, reason: str) -> None:
        await self._stream.aclose()
