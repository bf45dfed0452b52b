"""The transport seam under the Lingma client: text frames in, text frames out.

:class:`WebSocketTransport` is the real one (trio-websocket); :func:`memory_transport_pair`
connects two in-memory ends so client tests need no socket or process. trio-websocket's
``ConnectionClosed`` is translated here, at the boundary, into :class:`TransportClosed`.
"""

from __future__ import annotations

from typing import Protocol

import trio
import trio_websocket

__all__ = ["MemoryTransport", "Transport", "TransportClosed", "WebSocketTransport", "memory_transport_pair"]


class TransportClosed(Exception):
    """The other end went away (process died, socket closed)."""


class Transport(Protocol):
    async def send(self, text: str) -> None: ...

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
            raise TransportClosed(f"connection closed: {exc.reason}") from None

    async def receive(self) -> str:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportClosed(f"connection closed: {exc.reason}") from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def ping(self) -> None:
        """A WebSocket-level ping (detects a frozen peer, which raises nothing by itself)."""
        try:
            await self._ws.ping()
        except trio_websocket.ConnectionClosed as exc:
            raise TransportClosed(f"connection closed: {exc.reason}") from None

    async def aclose(self) -> None:
        await self._ws.aclose()


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
