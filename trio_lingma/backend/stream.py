"""One admitted request's event stream: its attempt(s), deadlines, and one retry.

Theory of operation
-------------------
An :class:`Attempt` is one try of a request on one instance: the instance's ticket (taken on
behalf of a per-request token, so any task may give it back), the upstream session (a reused
one from the session cache, or a fresh one) and the upstream turn (``chat/ask`` … ``chat/finish``).

:class:`EventStream` delivers *shaped* events (stop sequences, max_tokens, usage:
:mod:`trio_lingma.protocol.shaping`) and enforces the layered deadlines with absolute times:
time to first event, idle gap between upstream events, total request time. A passed deadline
is a terminal ``StreamError`` — never a hang.

A request that fails before the upstream sent any content — ``chat/ask`` refused, the runtime
closed the connection, or the turn ended in an upstream error before its first event — is
retried once on another READY instance (with a fresh session): the client has received no
model output yet, so the retry is invisible to it. Timeouts are not retried (they already
spent the client's patience), nor is a turn whose runtime dropped the connection over a message
too big for it (:class:`~trio_lingma.errors.MessageRefused`, WebSocket 1009): another instance
would drop it the same way.

The stream never releases anything itself: the gateway's ``open_turn`` closes it in a
``finally``, which ends the turn (``chat/stop`` if unfinished, shielded and bounded), returns
the ticket, and either checks the session into the cache (only after a successful Finish) or
hands it to the reaper to be deleted upstream.
"""

from __future__ import annotations

import math
import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import trio

from ..errors import GatewayError, MessageRefused, UpstreamClosed, UpstreamError, UpstreamTimeout, event_from_error
from ..protocol.agent_tools import ToolBridge, ToolPresenter
from ..protocol.client_tools import ClientToolTurn, fresh_question, offers_tools, reply_question
from ..protocol.conversation import ChatRequest, ToolCall
from ..protocol.events import (
    ErrorKind,
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallStart,
    Usage,
)
from ..protocol.shaping import OutputShaper
from ..protocol.structured import StructuredTurn
from ..protocol.tokens import count_input_tokens
from .dialects import Turn
from .sessions import SessionEntry, answer_key, prefix_key

if TYPE_CHECKING:
    from .gateway import Gateway, ModelInfo
    from .instance import Instance

__all__ = ["Attempt", "EventStream"]

_RETRYABLE = (ErrorKind.UPSTREAM_CLOSED, ErrorKind.UPSTREAM_ERROR)


class Attempt:
    """One try on one instance. The gateway creates it holding a ticket."""

    def __init__(self, instance: Instance, token: object, entry: SessionEntry | None) -> None:
        self.instance = instance
        self.token = token
        self.entry = entry
        self.life = instance.life
        self.session_id = entry.session_id if entry else uuid.uuid4().hex
        self.turns = entry.turns if entry else 0
        self.acquired_at = trio.current_time()
        self.turn: Turn | None = None
        self._stack = AsyncExitStack()

    def __repr__(self) -> str:
        kind = f"reuse turns={self.turns}" if self.entry else "fresh"
        return f"<Attempt {self.instance.name} session={self.session_id[:8]} {kind}>"

    @property
    def finished(self) -> bool:
        return self.turn is not None and self.turn.finished

    async def open(self, request: ChatRequest, model_key: str, *, mode: str, timeout: float) -> None:
        """Send ``chat/ask``: only the new turn into a reused session, else the whole conversation."""
        question = reply_question(request) if self.entry else fresh_question(request)
        await self._ask(question, model_key, is_reply=self.entry is not None, mode=mode, timeout=timeout)

    async def reask(self, question: str, model_key: str, *, mode: str, timeout: float) -> None:
        """Leave the finished turn and ask again in the same upstream session (``isReply``)."""
        await self.close_turn()
        self._stack = AsyncExitStack()
        await self._ask(question, model_key, is_reply=True, mode=mode, timeout=timeout)

    async def _ask(self, question: str, model_key: str, *, is_reply: bool, mode: str, timeout: float) -> None:
        connection = self.instance.connection
        if connection is None or connection.client.closed:
            raise UpstreamClosed(f"{self.instance.name} went away before the question was sent")
        turn = connection.open_turn(
            request_id=uuid.uuid4().hex, session_id=self.session_id, question=question,
            model_key=model_key, is_reply=is_reply, mode=mode, timeout=timeout)
        self.turn = entered = await self._stack.enter_async_context(turn)
        # ACP runtimes assign the session id (session/new): cache and delete under theirs.
        self.session_id = entered.session_id or self.session_id

    async def close_turn(self) -> None:
        """Leave the upstream turn (``chat/stop`` when unfinished: shielded and bounded)."""
        await self._stack.aclose()


class EventStream:
    """The shaped events of one admitted request, with deadlines and one early retry."""

    def __init__(self, gateway: Gateway, request: ChatRequest, model: ModelInfo, *, mode: str) -> None:
        settings = gateway.settings
        self._gw = gateway
        self._request = request
        self._model = model
        self._mode = mode
        self._session_scope = f"{model.key}\n{mode}"  # a session belongs to one model and mode
        self._key = prefix_key(self._session_scope, request)
        self._shaper = OutputShaper(input_tokens=count_input_tokens(request),
                                    max_tokens=request.max_tokens, stop=request.stop)
        self._tools = ToolPresenter(ToolBridge(settings.tool_bridge))  # TOOL_BRIDGE
        # the client's own tools, parsed out of the answer text (buffered calls when not streaming)
        self._client_tools = ClientToolTurn(request, incremental=request.stream) if offers_tools(request) else None
        # response_format: the answer is held, checked and re-asked once (protocol/structured.py)
        fmt = request.response_format
        self._structured = StructuredTurn(fmt) if fmt is not None else None
        now = trio.current_time()
        self._total_deadline = now + settings.request_timeout
        self._next_deadline = now + settings.first_token_timeout
        self._idle = settings.idle_timeout
        self._attempt: Attempt | None = None
        self._tried: set[int] = set()
        self._retries = 1
        self._first = True
        self._answer: list[str] = []
        self._calls: dict[str, list[str]] = {}  # client-tool calls the client got: id → [name, args]
        self._reusable = True
        self._finish: Finish | None = None
        self.ended = False
        self._aborted: StreamError | None = None
        self._receive_scope = trio.CancelScope()
        # for reports (metrics, usage): what the client got, and when
        self.opened_at = now
        self.queue_wait: float | None = None
        self.first_token_after: float | None = None
        self.usage: Usage | None = None

    @property
    def input_tokens(self) -> int:
        return self._shaper._input_tokens

    @property
    def succeeded(self) -> bool:
        """The turn ended with a Finish (not an error or a deadline)."""
        return self._finish is not None

    @property
    def attempt(self) -> Attempt | None:
        return self._attempt

    async def open(self) -> None:
        """Admit and send the question; one retry elsewhere if the upstream fails at once."""
        while True:
            self._attempt = await self._gw.admit(self._key if not self._tried else None,
                                                 exclude=frozenset(self._tried))
            if self.queue_wait is None:
                self.queue_wait = trio.current_time() - self.opened_at
            self._tried.add(self._attempt.instance.index)
            try:
                await self._attempt.open(self._request, self._model.key, mode=self._mode,
                                         timeout=self._gw.settings.first_token_timeout)
                return
            except UpstreamError as exc:
                await self.aclose(ok=False)
                # a timed-out chat/ask already spent the first-token deadline (and was stopped)
                # a runtime that dropped the connection over a message too big for it (1009)
                # would drop it on any instance
                if isinstance(exc, (UpstreamTimeout, MessageRefused)) or not self._may_retry():
                    raise

    def _may_retry(self) -> bool:
        if self._retries <= 0 or not self._first or self._aborted is not None or self._gw.draining \
                or not self._gw.has_ready(exclude=self._tried):
            return False
        self._retries -= 1
        return True

    async def aclose(self, *, ok: bool) -> None:
        """Give the attempt back to the gateway; cache the session only after a clean Finish."""
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return
        key = None
        if ok and self._reusable and self._finish is not None and self._finish.reason in _REUSABLE_ENDS:
            calls = tuple(ToolCall(id=i, name=n, arguments=a or "{}") for i, (n, a) in self._calls.items())
            key = answer_key(self._session_scope, self._request, "".join(self._answer), calls)
        await self._gw.release(attempt, store_as=key)

    async def receive(self, *, heartbeat: float = math.inf) -> list[Event]:
        """The next events; ``[]`` when ``heartbeat`` seconds passed in silence.

        Ends with exactly one terminal event (Finish or StreamError); after that returns [].
        """
        while not self.ended:
            batch = await self._next_batch(heartbeat)
            if batch is None:
                if trio.current_time() >= min(self._next_deadline, self._total_deadline):
                    return self._end([self._timeout_event()])
                return []
            if self._first and _retryable(batch) and self._may_retry():
                failed = await self._retry()
                if failed:
                    return failed
                continue
            if self._first:
                self.first_token_after = trio.current_time() - self.opened_at
            self._first = False
            self._next_deadline = trio.current_time() + self._idle
            out = self._shape(batch)
            reask = self._take_reask()
            if reask is not None:
                out += await self._reask(reask)
            if out:
                return out
        return []

    def _take_reask(self) -> str | None:
        for turn in (self._client_tools, self._structured):
            reask = turn.take_reask() if turn is not None else None
            if reask is not None:
                return reask
        return None

    async def _reask(self, question: str) -> list[Event]:
        """Ask once more in the same session after an unusable tool call or answer format."""
        assert self._attempt is not None
        timeout = self._gw.settings.first_token_timeout
        self._next_deadline = trio.current_time() + timeout
        try:
            await self._attempt.reask(question, self._model.key, mode=self._mode, timeout=timeout)
        except GatewayError as exc:
            return self._end([event_from_error(exc)])
        return []

    async def _next_batch(self, heartbeat: float) -> list[Event] | None:
        assert self._attempt is not None and self._attempt.turn is not None
        wake = min(self._next_deadline, self._total_deadline, trio.current_time() + heartbeat)
        if self._aborted is None:
            with trio.move_on_at(wake) as self._receive_scope:
                try:
                    return await self._attempt.turn.receive()
                except GatewayError as exc:
                    if isinstance(exc, MessageRefused):
                        self._retries = 0  # elsewhere the same message would do the same
                    return [event_from_error(exc)]
        return [self._aborted] if self._aborted is not None else None

    def abort(self, message: str) -> None:
        """End this stream soon with an ``overloaded`` error (shutdown after the drain timeout)."""
        if self._aborted is None and not self.ended:
            self._aborted = StreamError(kind=ErrorKind.OVERLOADED, message=message)
            self._receive_scope.cancel()

    async def _retry(self) -> list[Event]:
        """Drop the failed attempt and start over elsewhere; the terminal events if that fails."""
        await self.aclose(ok=False)
        self._next_deadline = trio.current_time() + self._gw.settings.first_token_timeout
        try:
            await self.open()
        except GatewayError as exc:
            return self._end([event_from_error(exc)])
        return []

    def _shape(self, batch: list[Event]) -> list[Event]:
        events = self._tools.feed(batch)
        if self._client_tools is not None:
            events = self._client_tools.feed(events)
        if self._structured is not None:
            events = self._structured.feed(events)
        out = [shaped for event in events for shaped in self._shaper.feed(event)]
        for event in out:
            match event:
                case TextDelta(text=text):
                    self._answer.append(text)
                case Finish():
                    self._finish = event
                case Usage():
                    self.usage = event
                case ThinkingDelta():
                    pass
                case ToolCallStart(executed=False, id=call_id, name=name):
                    self._calls[call_id] = [name, ""]  # the client runs it: part of the history
                case ToolCallArgsDelta(id=call_id, json=piece) if call_id in self._calls:
                    self._calls[call_id][1] += piece
                case _:  # Lingma's own tools or an error: the upstream history is not what the client saw
                    self._reusable = False
        if self._shaper.done:
            self.ended = True
        return out

    def _timeout_event(self) -> StreamError:
        if trio.current_time() >= self._total_deadline:
            what = "the whole request"
        elif self._first:
            what = "the first token"
        else:
            what = "the next chunk"
        return StreamError(kind=ErrorKind.UPSTREAM_TIMEOUT, message=f"Lingma took too long for {what}")

    def _end(self, events: list[Event]) -> list[Event]:
        self.ended = True
        return [shaped for event in events for shaped in self._shaper.feed(event)]

    async def collect(self) -> list[Event]:
        """Every remaining event (non-streaming responses)."""
        events: list[Event] = []
        while not self.ended:
            events += await self.receive()
        return events


#: A turn that ended so is what the client will send back as history (a stop string or a
#: max_tokens cut leaves upstream text the client never saw).
_REUSABLE_ENDS = frozenset({FinishReason.STOP, FinishReason.TOOL_USE})


def _retryable(batch: list[Event]) -> bool:
    """An upstream failure (not a timeout) as the very first thing the upstream sent."""
    return isinstance(batch[0], StreamError) and batch[0].kind in _RETRYABLE
