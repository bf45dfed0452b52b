"""The Lingma JSON-RPC client: one connection, one reader, one writer.

Theory of operation
-------------------
One named reader task owns the receiving side. It never blocks on a consumer: responses wake
the caller waiting for them; pushes that belong to a chat turn (``params.requestId``) go to that
turn's bounded channel with ``send_nowait``; every server→client request is answered at once
(lingma-protocol.md pitfall 1) by queueing the answer for the writer; a request that needs a
request of ours afterwards (an async ``tool/invoke`` → ``tool/invokeResult``, §4.2) gets that
queued right behind the answer, and its reply is only checked, never awaited. A turn whose consumer
falls so far behind that its channel fills up is failed alone (its channel is closed), so a
slow HTTP client slows only its own stream and never the connection.

One named writer task owns the sending side, fed by an :class:`~.outbox.Outbox`: our own calls
(the health ``ping`` among them) jump ahead of the answers to pushes, and every frame that is
ready goes out in one batch. Answers are never dropped: when the writer falls
:data:`OUTBOX` answers behind (a runtime pushing faster than it reads our answers), the reader
stops reading until it catches up, which back-pressures the runtime through TCP. Any message
received counts as a sign of life (:attr:`LingmaClient.last_received`): a runtime busy streaming
is not dead even when a probe's answer waits behind its pushes.

When the connection ends, every pending call and every open turn gets
:class:`~trio_lingma.errors.UpstreamClosed` — nobody waits forever on a dead runtime.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from ..errors import MessageRefused, MessageTooLarge, UpstreamClosed, UpstreamError, UpstreamFailed, UpstreamTimeout
from ..protocol import jsonrpc
from ..protocol.acp import update_request_id
from ..protocol.events import Event
from ..protocol.legacy import followup_request, push_request_id, reply_to_server_request
from .outbox import Outbox, OutboxClosed
from .transport import Transport, TransportClosed, is_message_refused

__all__ = ["LingmaClient", "Prepared", "Push", "TURN_BUFFER", "take_queued"]

log = logging.getLogger(__name__)

#: Pushes buffered per turn before the turn is failed as too slow (a whole answer fits).
TURN_BUFFER = 4096
#: Answers queued for the writer before the reader stops reading (back-pressure).
OUTBOX = 4096


@attrs.frozen
class Push:
    """A server→client message routed to a turn."""

    method: str
    params: Any


def take_queued(pushes: trio.MemoryReceiveChannel[Push], feed: Callable[[str, Any], list[Event]],
                finished: Callable[[], bool]) -> list[Event]:
    """The events of every push already queued (until the turn finishes), without waiting: a
    consumer that fell behind catches up with one write instead of one per push. A broken
    channel shows at the caller's next ``receive``, after these events."""
    events: list[Event] = []
    while not finished():
        try:
            push = pushes.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            break
        events += feed(push.method, push.params)
    return events


@attrs.frozen
class Prepared:
    """An encoded request (:meth:`LingmaClient.prepare`), ready to be sent once."""

    method: str
    id: int
    frame: str


class _Call:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.message: jsonrpc.Response | jsonrpc.ErrorResponse | None = None


class LingmaClient:
    """A JSON-RPC client over a :class:`Transport`. Run :meth:`serve` in a nursery first."""

    def __init__(self, transport: Transport, *, name: str = "lingma", outbox: int = OUTBOX,
                 max_message_bytes: int | None = None) -> None:
        self.name = name
        self._transport = transport
        self._peer = jsonrpc.Peer(max_message_bytes=max_message_bytes)
        self._calls: dict[int | str, _Call] = {}
        self._turns: dict[str, trio.MemorySendChannel[Push]] = {}
        self._posted: dict[int | str, str] = {}  # our fire-and-forget requests: id → method
        self._outbox = Outbox(outbox)
        #: ``trio.current_time()`` of the last data received from the runtime.
        self.last_received = -math.inf
        self._closed: str | None = None
        self._write_failed: str | None = None
        self._nursery: trio.Nursery | None = None
        self.unanswered_errors = 0

    def __repr__(self) -> str:
        state = f"closed={self._closed!r}" if self._closed else "open"
        return f"<LingmaClient {self.name} {state} calls={len(self._calls)} turns={len(self._turns)}>"

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the reader and the writer until the connection ends (then raise UpstreamClosed)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write_loop, name=f"{self.name} writer")
                task_status.started()
                await self._read_loop()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._close(self._closed or self._write_failed or "connection closed")
        raise UpstreamClosed(f"{self.name}: {self._closed}")

    async def call(self, method: str, params: Any = None, *, timeout: float = math.inf) -> Any:
        """Send a request and wait for its result; JSON-RPC errors raise UpstreamFailed."""
        return await self.call_prepared(self.prepare(method, params), timeout=timeout)

    def prepare(self, method: str, params: Any = None) -> Prepared:
        """Encode a request now, so that one too large for the runtime fails here, at once, with
        :class:`~trio_lingma.errors.MessageTooLarge` (a 413 for the client; nothing is sent)."""
        self._check_open()
        try:
            id_, frame = self._peer.send_request(method, params)
        except jsonrpc.FrameTooLarge as exc:
            raise _too_large(exc) from None
        return Prepared(method=method, id=id_, frame=frame)

    async def call_prepared(self, prepared: Prepared, *, timeout: float = math.inf) -> Any:
        """Send a :meth:`prepare`-d request and wait for its result."""
        method, id_, frame = prepared.method, prepared.id, prepared.frame
        call = self._calls[id_] = _Call()
        try:
            await self._send(frame)
            with trio.fail_after(timeout):
                await call.done.wait()
        except trio.TooSlowError:
            raise UpstreamTimeout(f"{self.name}: no answer to {method} within {timeout:g} s") from None
        finally:
            self._calls.pop(id_, None)
            self._peer.forget(id_)
        return self._result(method, call.message)

    async def ping(self, *, timeout: float) -> None:
        """The health probe every dialect uses: ``ping``, answered within ``timeout`` seconds."""
        await self.call("ping", timeout=timeout)

    def start_task(self, async_fn: Callable[..., Awaitable[object]], *args: object, name: str) -> None:
        """Run a task that belongs to this connection (it ends with it; it shows in the tree)."""
        self._check_open()
        assert self._nursery is not None, "serve() is not running"
        self._nursery.start_soon(async_fn, *args, name=name)

    def turn_lost(self) -> UpstreamError:
        """Why a turn's push channel ended early: the connection went away, or the turn's
        consumer fell so far behind that the reader gave up on it."""
        if self.closed:
            return UpstreamClosed("the Lingma runtime went away during the answer")
        return UpstreamError("the answer could not be delivered fast enough")

    async def notify(self, method: str, params: Any = None) -> None:
        self._check_open()
        try:
            frame = self._peer.send_notification(method, params)
        except jsonrpc.FrameTooLarge as exc:
            raise _too_large(exc) from None
        await self._send(frame)

    @contextmanager
    def subscribe(self, request_id: str) -> Iterator[trio.MemoryReceiveChannel[Push]]:
        """Route pushes carrying ``requestId`` to the returned channel while the block runs."""
        self._check_open()
        if request_id in self._turns:
            raise ValueError(f"request id {request_id} is already subscribed")
        send, receive = trio.open_memory_channel[Push](TURN_BUFFER)
        self._turns[request_id] = send
        try:
            yield receive
        finally:
            self._turns.pop(request_id, None)
            send.close()
            receive.close()

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed is not None:
            raise UpstreamClosed(f"{self.name}: {self._closed}")

    async def _send(self, frame: str) -> None:
        """Queue one of our own frames ahead of queued answers; UpstreamClosed once closed."""
        try:
            self._outbox.put_nowait(frame, urgent=True)
        except OutboxClosed:
            raise UpstreamClosed(f"{self.name}: {self._closed or 'connection closed'}") from None
        await trio.lowlevel.checkpoint()

    def _result(self, method: str, message: jsonrpc.Response | jsonrpc.ErrorResponse | None) -> Any:
        if message is None:
            closed = MessageRefused if is_message_refused(self._closed or "") else UpstreamClosed
            raise closed(f"{self.name}: {self._closed or 'connection closed'} during {method}")
        if isinstance(message, jsonrpc.ErrorResponse):
            err = message.error
            raise UpstreamFailed(f"Lingma error {err.code} on {method}: {err.message}", param=str(err.code))
        return message.result

    async def _write_loop(self) -> None:
        while frames := await self._outbox.take():
            try:
                await self._transport.send_many(frames)
            except TransportClosed as exc:
                # The reader says why the connection ended (it may still read the runtime's
                # close frame, e.g. 1009 for a message too big); this is only the fallback.
                self._write_failed = str(exc)
                self._outbox.close()  # wakes a reader waiting for room
                return

    async def _read_loop(self) -> None:
        while True:
            try:
                text = await self._transport.receive()
            except TransportClosed as exc:
                self._closed = str(exc)
                return
            self.last_received = trio.current_time()
            try:
                messages = self._peer.receive_data(text)
            except jsonrpc.FramingError as exc:
                log.warning("%s: dropped unframed data from Lingma: %s", self.name, exc)
                messages = list(exc.messages)  # complete before the bad bytes: still valid
            for message in messages:
                self._dispatch(message)
            if self._outbox.full:
                try:
                    await self._outbox.wait_for_room()  # back-pressure: stop reading
                except OutboxClosed:
                    self._closed = self._closed or self._write_failed or "connection closed"
                    return

    def _dispatch(self, message: jsonrpc.Received) -> None:
        match message:
            case jsonrpc.Response() | jsonrpc.ErrorResponse():
                self._resolve(message)
            case jsonrpc.Request(id=id_, method=method, params=params):
                now_ms = int(time.time() * 1000)
                reply = reply_to_server_request(method, params, now_ms=now_ms)
                self._queue(self._peer.send_result(id_, reply))
                followup = followup_request(method, params, now_ms=now_ms)
                if followup is not None:
                    self._post(*followup)
                self._route(method, params)
            case jsonrpc.Notification(method=method, params=params):
                self._route(method, params)
            case jsonrpc.Invalid(reason=reason):
                log.warning("%s: invalid message from Lingma: %s", self.name, reason)

    def _post(self, method: str, params: Any) -> None:
        """Send a request whose answer nobody waits for (the reader must never block)."""
        try:
            id_, frame = self._peer.send_request(method, params)
        except jsonrpc.FrameTooLarge as exc:
            log.error("%s: not sending %s", self.name, exc)
            return
        self._posted[id_] = method
        self._queue(frame)

    def _check_posted(self, message: jsonrpc.Response | jsonrpc.ErrorResponse) -> None:
        method = self._posted.pop(message.id, "?") if message.id is not None else "?"
        # tool/invokeResult: a non-null errorCode (even "") means Lingma rejected it (pitfall 14).
        result = message.result if isinstance(message, jsonrpc.Response) else None
        failed = isinstance(message, jsonrpc.ErrorResponse) or (
            isinstance(result, dict) and result.get("errorCode") is not None
        )
        if failed:
            detail = message.error if isinstance(message, jsonrpc.ErrorResponse) else result
            log.warning("%s: Lingma rejected our %s: %s", self.name, method, detail)

    def _resolve(self, message: jsonrpc.Response | jsonrpc.ErrorResponse) -> None:
        if message.id is not None and message.id in self._posted:
            self._check_posted(message)
            return
        call = self._calls.get(message.id) if message.id is not None else None
        if call is None:
            if isinstance(message, jsonrpc.ErrorResponse):
                self.unanswered_errors += 1
                log.warning("%s: Lingma error for no pending call: %s", self.name, message.error)
            return
        call.message = message
        call.done.set()

    def _route(self, method: str, params: Any) -> None:
        request_id = push_request_id(params) or update_request_id(params)
        channel = self._turns.get(request_id) if request_id else None
        if channel is None or request_id is None:
            return
        try:
            channel.send_nowait(Push(method, params))
        except trio.WouldBlock:
            log.warning("%s: turn %s fell %d pushes behind; failing it", self.name, request_id, TURN_BUFFER)
            self._turns.pop(request_id, None)
            channel.close()
        except trio.BrokenResourceError:
            self._turns.pop(request_id, None)

    def _queue(self, frame: str) -> None:
        try:
            self._outbox.put_nowait(frame)  # never dropped: the reader waits for room instead
        except OutboxClosed:
            pass  # the writer is gone; the reader sees the close next

    def _close(self, reason: str) -> None:
        self._closed = reason
        for call in self._calls.values():
            call.done.set()  # message stays None → UpstreamClosed for the caller
        for channel in self._turns.values():
            channel.close()
        self._turns.clear()
        self._posted.clear()
        self._outbox.close()


def _too_large(exc: jsonrpc.FrameTooLarge) -> MessageTooLarge:
    return MessageTooLarge(
        f"The request is too large for the Lingma runtime: its {exc.method} message would be {exc.size} bytes, "
        f"over the limit of {exc.limit} bytes (LINGMA_MAX_MESSAGE_BYTES). Shorten the conversation or its "
        "attachments.")
