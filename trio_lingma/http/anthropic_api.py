"""Anthropic-compatible routes: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Thin: parse with :mod:`trio_lingma.protocol.anthropic`, run the turn through the shared core,
encode with that module's :class:`~trio_lingma.protocol.anthropic.MessageStream`. Errors are
rendered in Anthropic's shape (``{"type":"error","error":{"type","message"},"request_id"}``) by
this blueprint's handler, and by the app for errors raised outside routes under ``/v1/messages``.

Theory of operation (streams)
-----------------------------
Anthropic's stream opens with ``message_start`` and a ``ping``; Claude Code and the SDK treat a
``ping`` as a keep-alive anywhere after that, so while Lingma is silent for
``SSE_PING_INTERVAL`` seconds we send one (``EventStream.receive(heartbeat=...)`` returns
``[]`` on silence). The turn is admitted before headers go out (:func:`open_event_stream`), so
model, auth and capacity errors are real HTTP errors; a failure after that is fed to the
MessageStream as a ``StreamError``, which closes the open block and ends the stream with an
``error`` event. ``?beta=true`` and the ``anthropic-version``/``anthropic-beta`` headers need no
handling: none of them changes what this gateway answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from quart import Blueprint, Response

from ..errors import GatewayError, InternalError, event_from_error
from ..observability.logs import current_request_id
from ..protocol import anthropic, sse
from ..protocol.anthropic import MessageStream, SseEvent
from ..protocol.events import Event
from .common import check_auth, gateway, json_response, open_event_stream, open_turn, read_json

__all__ = ["StreamBody", "blueprint", "render_error", "stream_batches", "stream_events"]

blueprint = Blueprint("anthropic", __name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class TurnEvents(Protocol):
    """What :func:`stream_events` needs of a turn (:class:`~trio_lingma.backend.gateway.EventStream`)."""

    ended: bool

    @property
    def input_tokens(self) -> int: ...

    async def receive(self, *, heartbeat: float) -> list[Event]: ...


def render_error(exc: GatewayError) -> Response:
    """An error response in Anthropic's shape (with the request id the headers carry too)."""
    status, body = anthropic.error_body(exc, request_id=current_request_id())
    return json_response(body, status=status, retry_after=exc.retry_after)


@blueprint.before_request
async def _auth() -> None:
    check_auth()


@blueprint.errorhandler(GatewayError)
async def _error(exc: GatewayError) -> Response:
    return render_error(exc)


@blueprint.post("/v1/messages/count_tokens")
async def count_tokens() -> Any:
    chat = anthropic.parse_count_tokens_request(await read_json())
    gateway().resolve_model(chat.model)  # an unknown model is a 404 here too, as on /v1/messages
    return json_response(anthropic.count_tokens_response(chat))


@blueprint.post("/v1/messages")
async def messages() -> Any:
    chat = anthropic.parse_messages_request(await read_json())
    message_id = anthropic.new_message_id()
    if not chat.stream:
        async with open_turn(chat) as stream:
            events = await stream.collect()
        return json_response(anthropic.build_message(events, message_id=message_id, model=chat.model,
                                                      executed_tools=_executed_tools()))
    encoder = StreamBody(message_id, chat.model, gateway().settings.sse_ping_interval, _executed_tools())
    body = await open_event_stream(chat, encoder.render, encoder.on_error)
    return Response(body, content_type="text/event-stream", headers=SSE_HEADERS)


async def stream_events(
    stream: TurnEvents, messages: MessageStream, *, heartbeat: float
) -> AsyncIterator[SseEvent]:
    """The stream events of one turn: ``message_start``, ``ping``, then the turn's, with a
    ``ping`` after every ``heartbeat`` seconds of upstream silence."""
    async for batch in stream_batches(stream, messages, heartbeat=heartbeat):
        for item in batch:
            assert not isinstance(item, bytes)  # only rendered batches carry frames
            yield item


async def stream_batches(
    stream: TurnEvents, messages: MessageStream, *, heartbeat: float, rendered: bool = False
) -> AsyncIterator[list[SseEvent | bytes]]:
    """:func:`stream_events` grouped by what is ready together (one write per group); with
    ``rendered``, text deltas come as their finished SSE frames (``MessageStream.parts``)."""
    feed = messages.parts if rendered else messages.feed
    yield [*messages.start(), messages.ping()]
    while not stream.ended:
        events = await stream.receive(heartbeat=heartbeat)
        if not events and not stream.ended:
            yield [messages.ping()]
        batch = [item for event in events for item in feed(event)]
        if batch:
            yield batch
    if not messages.done:  # the core promises a terminal event; never leave the client hanging
        yield [*messages.feed(event_from_error(InternalError("the turn ended without a finish event")))]


def _executed_tools() -> anthropic.ExecutedTools:
    """Tools Lingma already ran: ``mcp_tool_use``/``mcp_tool_result`` blocks in bridge mode
    (a client never runs those again; DESIGN.md "Tools Lingma runs itself")."""
    return "mcp" if gateway().settings.tool_bridge == "bridge" else "tool_use"


def _frame(item: SseEvent) -> bytes:
    name, payload = item
    return sse.encode_event(payload, event=name)


class StreamBody:
    """One streamed response: the MessageStream shared by the body and its error ending."""

    def __init__(self, message_id: str, model: str, heartbeat: float,
                 executed_tools: anthropic.ExecutedTools = "tool_use") -> None:
        self._message_id = message_id
        self._model = model
        self._heartbeat = heartbeat
        self._executed_tools = executed_tools
        self._messages: MessageStream | None = None

    async def render(self, stream: TurnEvents) -> AsyncIterator[bytes]:
        # input_tokens: the number the core counted for this turn (count_input_tokens).
        self._messages = MessageStream(message_id=self._message_id, model=self._model,
                                       input_tokens=stream.input_tokens, executed_tools=self._executed_tools)
        async for batch in stream_batches(stream, self._messages, heartbeat=self._heartbeat, rendered=True):
            yield b"".join(item if isinstance(item, bytes) else _frame(item) for item in batch)

    def on_error(self, exc: GatewayError) -> bytes:
        """Close the open block and end with an ``error`` event (after headers were sent)."""
        prelude: list[SseEvent] = []
        if self._messages is None:  # failed before message_start: still a well-formed stream
            self._messages = MessageStream(message_id=self._message_id, model=self._model, input_tokens=0)
            prelude = self._messages.start()
        if self._messages.done:
            return b""
        closing = self._messages.feed(event_from_error(exc))
        return b"".join(_frame(item) for item in prelude) + b"".join(_frame(item) for item in closing)
