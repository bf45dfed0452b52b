"""The IPC transport: the same ``Content-Length`` framing over a unix socket's byte stream.

Theory of operation
-------------------
Desktop runtimes also listen on an IPC endpoint and their own extension prefers it to the
WebSocket (OC ``ipc-notes.md``: connection priority IPC, then WEBSOCKET); the discovery file
names it in ``ipcServerPath`` (WE ``lib/acp.js`` connects there; LP ``pipe_other.go`` dials it
as a unix socket on macOS/Linux). The framing is the one the WebSocket frames carry
(lingma-protocol.md §1.5), but a byte stream has no message boundaries: a read may end inside a
header, a body or even a UTF-8 character. :class:`IpcTransport` therefore hands the client text
decoded incrementally, and the client's JSON-RPC peer (which buffers across reads anyway)
finds the messages. A send writes the framed text's bytes; ``send_many`` writes a batch in one
go. Windows named pipes are out of scope.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import UpstreamUnavailable
from .transport import Transport, TransportClosed

__all__ = ["IpcTransport", "open_ipc_transport"]

READ_SIZE = 65536


class IpcTransport:
    """One Lingma connection over a byte stream (a unix socket)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __repr__(self) -> str:
        return f"<IpcTransport {self._stream!r}>"

    async def send(self, text: str) -> None:
        await self._write(text.encode("utf-8"))

    async def send_many(self, texts: list[str]) -> None:
        await self._write("".join(texts).encode("utf-8"))

    async def receive(self) -> str:
        """The next decoded piece of the stream (never empty; TransportClosed at its end)."""
        while True:
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise TransportClosed("connection closed (the IPC socket broke)") from None
            if not data:
                raise TransportClosed("connection closed by the runtime (end of the IPC stream)")
            text = self._decoder.decode(data)
            if text:
                return text

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def _write(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise TransportClosed("connection closed (the IPC socket broke)") from None


@asynccontextmanager
async def open_ipc_transport(path: str, *, source: str = "") -> AsyncIterator[Transport]:
    """An :class:`IpcTransport` over the unix socket at ``path``, always closed on exit."""
    where = f"unix socket {path}" + (f" (from {source})" if source else "")
    try:
        stream = await trio.open_unix_socket(path)
    except OSError as exc:
        raise UpstreamUnavailable(f"cannot connect to the Lingma runtime at {where}: {exc.strerror or exc}") from None
    try:
        yield IpcTransport(stream)
    finally:
        await trio.aclose_forcefully(stream)
