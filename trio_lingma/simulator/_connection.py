"""One client connection: a reader, one writer lock, push acknowledgement tracking.

Theory of operation
-------------------
The :class:`~trio_lingma.protocol.jsonrpc.Peer` core runs in the server role. One reader task
feeds every received frame to it and never blocks: each request is answered in its own named
task (a ``chat/ask`` streams for a long time, and a ``tool/invokeResult`` must get through
while a turn waits for it, lingma-protocol.md §7), notifications go to the dialect, and client
responses acknowledge our pushes. Unframed input is logged as ``Unknown message header`` and
otherwise ignored; the connection stays open, as with the real binary (§1.5).

Every send goes through one ``trio.Lock`` so frames never interleave. Every push (a
server→client request) gets a watchdog: unanswered after ``Timeouts.ack`` it is logged like
the binary does (``|Outbound| request ... failed: no response from client, timeout reached``)
and counted in ``sim/stats``; the stream itself goes on (pitfall 1).
"""

from __future__ import annotations

from typing import Any

import trio

from ..protocol.jsonrpc import (
    INTERNAL_ERROR,
    PARSE_ERROR,
    ErrorResponse,
    FramingError,
    Invalid,
    Notification,
    Peer,
    Received,
    Request,
    Response,
)
from ._channel import Channel, ChannelClosed
from ._dialect import Dialect, RpcFailure
from ._runtime import Simulator

__all__ = ["Connection"]


class Connection:
    """Serves one accepted link (WebSocket or unix socket) until the client leaves or the simulator stops."""

    def __init__(self, channel: Channel, sim: Simulator, dialect: Dialect, conn_id: int) -> None:
        self._channel = channel
        self._sim = sim
        self._dialect = dialect
        self.conn_id = conn_id
        self._peer = Peer()
        self._send_lock = trio.Lock()
        self._acks: dict[int, trio.Event] = {}
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<Connection #{self.conn_id} unacked={len(self._acks)} {self._peer!r}>"

    async def serve(self) -> None:
        """Read until the client disconnects; raises ChannelClosed if a send fails."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._read_loop()
            nursery.cancel_scope.cancel()

    async def _read_loop(self) -> None:
        while True:
            try:
                data = await self._channel.get_message()
            except ChannelClosed as exc:
                self._sim.log.info(f"connection #{self.conn_id} closed: {exc}")
                return
            self._on_data(data)

    def _on_data(self, data: str | bytes) -> None:
        try:
            items = self._peer.receive_data(data)
        except FramingError as exc:
            preview = data[:80] if isinstance(data, str) else data[:80].decode(errors="replace")
            self._sim.log.warn(f"read message failed: {exc}: {preview!r}")
            items = list(exc.messages)  # what was complete before the bad bytes still counts
        for item in items:
            self._dispatch(item)

    def _dispatch(self, item: Received) -> None:
        nursery = self._require_nursery()
        match item:
            case Request(id=id_, method=method):
                self._sim.log.info(f"receive request: method={method} id={id_}")
                nursery.start_soon(self._answer, item, name=f"request {method} id={id_}")
            case Notification(method=method):
                self._sim.log.info(f"receive notification: method={method}")
                self._dialect.handle_notification(self, item)
            case Response() | ErrorResponse():
                self._on_ack(item)
            case Invalid(reason=reason):
                self._sim.log.warn(f"invalid message: {reason}")
                frame = self._peer.send_error(None, PARSE_ERROR, reason)
                nursery.start_soon(self.send, frame, name=f"parse error #{self.conn_id}")

    async def _answer(self, request: Request) -> None:
        try:
            reply = self._dialect.handle_request(self, request)
        except RpcFailure as exc:
            await self.send(self._peer.send_error(request.id, exc.code, exc.message))
            return
        except Exception as exc:
            self._sim.log.error(f"handler for {request.method} failed: {exc!r}")
            await self.send(self._peer.send_error(request.id, INTERNAL_ERROR, str(exc)))
            return
        if not reply.deferred:
            await self.send(self._peer.send_result(request.id, reply.result))
        if reply.then is not None:
            await reply.then()

    def _on_ack(self, msg: Response | ErrorResponse) -> None:
        event = self._acks.pop(msg.id, None) if isinstance(msg.id, int) else None
        if event is None:
            self._sim.log.warn(f"response to unknown request id {msg.id!r}")
            return
        event.set()

    async def send(self, frame: str) -> None:
        """Send one framed message as one text frame (the only way anything is sent)."""
        async with self._send_lock:
            await self._channel.send_message(frame)

    async def respond(self, id_: int | str, result: Any) -> None:
        """Answer a request whose :class:`Reply` was ``deferred``."""
        await self.send(self._peer.send_result(id_, result))

    async def push(self, method: str, params: dict[str, Any]) -> int:
        """Send a server→client request with a fresh id and return it (see :meth:`wait_acked`)."""
        id_, frame = self._peer.send_request(method, params)
        event = self._acks[id_] = trio.Event()
        await self.send(frame)
        self._require_nursery().start_soon(
            self._watch_ack, id_, method, event, name=f"ack watch {method} id={id_}"
        )
        return id_

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self.send(self._peer.send_notification(method, params))

    async def wait_acked(self, id_: int) -> None:
        """Wait until the client answered push ``id_`` (returns at once if it already did)."""
        event = self._acks.get(id_)
        if event is not None:
            await event.wait()

    async def _watch_ack(self, id_: int, method: str, event: trio.Event) -> None:
        with trio.move_on_after(self._sim.timeouts.ack):
            await event.wait()
            return
        self._sim.state.unanswered_pushes += 1
        self._sim.log.warn(
            f"|Outbound| request {method} id={id_} failed: no response from client, "
            "timeout reached"
        )

    async def abort(self, reason: str) -> None:
        """Drop the connection (the in-process stand-in for a crashed binary)."""
        await self._channel.abort(reason)

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("Connection.serve() is not running")
        return self._nursery
