"""The OpenAI Responses API wire adapter (sans-IO), both directions.

Theory of operation
-------------------
*Requests* are parsed by :mod:`.responses_request` (re-exported here).

*Responses.* :class:`ResponseStream` turns the shaped event stream of the core (content
events, then ``Usage`` right before ``Finish``, or a ``StreamError``) into the streaming event
grammar of the Responses API, every event numbered by ``sequence_number``:

* ``response.created`` and ``response.in_progress`` (the response object, ``output: []``);
* one *output item* per run of the same kind of content, opened by ``response.output_item.added``
  and closed by ``response.output_item.done`` (with the whole item):
  - thinking -> a ``reasoning`` item whose one summary part streams as
    ``response.reasoning_summary_part.added`` / ``response.reasoning_summary_text.delta`` /
    ``.done`` / ``response.reasoning_summary_part.done``;
  - text -> a ``message`` item with one ``output_text`` part: ``response.content_part.added``,
    ``response.output_text.delta`` ..., ``response.output_text.done``, ``response.content_part.done``;
  - a client tool call -> a ``function_call`` item: ``response.function_call_arguments.delta``
    ... ``.done``;
  - a tool Lingma ran itself (agent mode, ``TOOL_BRIDGE=bridge``) -> an ``mcp_call`` item
    (``server_label: "lingma"``) with its output or error: already executed, so nothing asks
    the client to run it (the Anthropic adapter's ``mcp_tool_use`` in Responses' words);
* the end: ``response.completed`` (``status: "completed"``), ``response.incomplete`` when
  ``max_output_tokens`` cut the answer (``incomplete_details.reason: "max_output_tokens"``), or
  ``response.failed`` with ``error: {code, message}`` when the turn failed after headers.

:func:`build_response` feeds the same stream and returns its final response object, so the
streamed and non-streamed responses cannot disagree. :class:`ResponseStore`
(:mod:`.responses_store`) keeps finished responses for ``previous_response_id`` and ``GET``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ..errors import GatewayError, InternalError, error_from_event
from .events import (
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallResult,
    ToolCallStart,
    Usage,
)
from .responses_request import ResponsesRequest, parse_responses_request
from .responses_store import ResponseStore, StoredResponse
from .tokens import count_text

__all__ = [
    "ResponseStore",
    "ResponseStream",
    "ResponsesRequest",
    "StoredResponse",
    "build_response",
    "new_response_id",
    "parse_responses_request",
]

Json = dict[str, Any]


def new_response_id() -> str:
    """A fresh ``resp_…`` id."""
    return f"resp_{secrets.token_hex(24)}"


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def response_object(request: ResponsesRequest, *, response_id: str, created: int) -> Json:
    """The response object as it stands before any output (``status: "in_progress"``)."""
    wire = request.wire
    reasoning = attrs.asdict(wire.reasoning) if wire.reasoning else {"effort": None, "summary": None}
    text_format = _dropping_none(attrs.asdict(wire.text.format)) if wire.text and wire.text.format else {"type": "text"}
    return {
        "id": response_id, "object": "response", "created_at": created, "status": "in_progress",
        "error": None, "incomplete_details": None, "instructions": wire.instructions,
        "max_output_tokens": wire.max_output_tokens, "model": wire.model, "output": [],
        "parallel_tool_calls": request.chat.parallel_tool_calls,
        "previous_response_id": wire.previous_response_id, "reasoning": reasoning,
        "store": wire.store is not False, "temperature": wire.temperature, "text": {"format": text_format},
        "tool_choice": request.tool_choice, "tools": list(request.tools), "top_p": wire.top_p,
        "truncation": "disabled", "usage": None, "user": wire.user, "metadata": wire.metadata or {},
    }


def _dropping_none(value: Json) -> Json:
    return {k: v for k, v in value.items() if v is not None}


@attrs.define
class _Open:
    """The output item being streamed."""

    kind: str  # "reasoning", "message", "function_call", "mcp_call"
    index: int
    item: Json
    text: list[str] = attrs.Factory(list)
    call_id: str | None = None


class ResponseStream:
    """Turns the internal event stream into Responses API streaming events (sans-IO)."""

    def __init__(self, request: ResponsesRequest, *, response_id: str, created: int) -> None:
        self.response = response_object(request, response_id=response_id, created=created)
        self._seq = 0
        self._open: _Open | None = None
        self._usage: Usage | None = None
        self._reasoning: list[str] = []

    def __repr__(self) -> str:
        return f"<ResponseStream {self.response['id']} items={len(self.response['output'])} {self.status}>"

    @property
    def status(self) -> str:
        return str(self.response["status"])

    @property
    def done(self) -> bool:
        """A terminal event was fed: ``response.completed``/``.incomplete``/``.failed`` went out."""
        return self.status != "in_progress"

    def start(self) -> list[Json]:
        """``response.created`` then ``response.in_progress``."""
        return [self._event("response.created", response=self._snapshot()),
                self._event("response.in_progress", response=self._snapshot())]

    def feed(self, event: Event) -> list[Json]:
        """The streaming events (possibly none) that ``event`` produces."""
        if self.done:
            return []
        return self._HANDLERS[type(event)](self, event)

    def fail(self, exc: GatewayError) -> list[Json]:
        """End with ``response.failed`` (an error raised after headers were sent)."""
        if self.done:
            return []
        out = self._close(status="incomplete")
        self.response["status"] = "failed"
        self.response["error"] = {"code": _failure_code(exc), "message": exc.message}
        self.response["usage"] = self._usage_json()
        return [*out, self._event("response.failed", response=self._snapshot())]

    # -- helpers

    def _event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self) -> Json:
        return {**self.response, "output": list(self.response["output"])}

    def _opening(self, kind: str, item: Json, *, call_id: str | None = None) -> list[Json]:
        out = self._close() if self._open is not None else []
        index = len(self.response["output"])
        self.response["output"].append(item)
        self._open = _Open(kind=kind, index=index, item=item, call_id=call_id)
        return [*out, self._event("response.output_item.added", output_index=index, item=_copy(item))]

    def _where(self, opened: _Open | None = None) -> Json:
        opened = opened or self._open
        assert opened is not None
        return {"item_id": opened.item["id"], "output_index": opened.index}

    # -- content

    def _text(self, event: TextDelta) -> list[Json]:
        if not event.text:
            return []
        out: list[Json] = []
        if self._open is None or self._open.kind != "message":
            item = {"id": _item_id("msg"), "type": "message", "status": "in_progress", "content": [],
                    "role": "assistant"}
            out += self._opening("message", item)
            out.append(self._event("response.content_part.added", **self._where(), content_index=0,
                                   part=_text_part("")))
        assert self._open is not None
        self._open.text.append(event.text)
        return [*out, self._event("response.output_text.delta", **self._where(), content_index=0,
                                  delta=event.text, logprobs=[])]

    def _thinking(self, event: ThinkingDelta) -> list[Json]:
        if not event.text:
            return []
        out: list[Json] = []
        if self._open is None or self._open.kind != "reasoning":
            out += self._opening("reasoning", {"id": _item_id("rs"), "type": "reasoning", "summary": []})
            out.append(self._event("response.reasoning_summary_part.added", **self._where(),
                                   summary_index=0, part=_summary("")))
        assert self._open is not None
        self._open.text.append(event.text)
        self._reasoning.append(event.text)
        return [*out, self._event("response.reasoning_summary_text.delta", **self._where(),
                                  summary_index=0, delta=event.text)]

    def _tool_start(self, event: ToolCallStart) -> list[Json]:
        if event.executed:
            item = {"id": _item_id("mcp"), "type": "mcp_call", "status": "calling", "server_label": "lingma",
                    "name": event.name, "arguments": "", "output": None, "error": None}
            return self._opening("mcp_call", item, call_id=event.id)
        item = {"id": _item_id("fc"), "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": event.id, "name": event.name}
        return self._opening("function_call", item, call_id=event.id)

    def _tool_args(self, event: ToolCallArgsDelta) -> list[Json]:
        if self._open is None or self._open.call_id != event.id or not event.json:
            return []
        self._open.text.append(event.json)
        kind = "response.function_call_arguments.delta" if self._open.kind == "function_call" \
            else "response.mcp_call_arguments.delta"
        return [self._event(kind, **self._where(), delta=event.json)]

    def _tool_result(self, event: ToolCallResult) -> list[Json]:
        # Only the result of the mcp_call still open can join it; Lingma already folded any
        # result into the answer that follows, so a late one is not repeated.
        if self._open is None or self._open.kind != "mcp_call" or self._open.call_id != event.id:
            return []
        item = self._open.item
        if event.is_error:
            item["error"] = {"type": "mcp_tool_execution_error", "content": event.content}
        else:
            item["output"] = event.content
        return self._close()

    def _remember_usage(self, event: Usage) -> list[Json]:
        self._usage = event
        return []

    def _finish(self, event: Finish) -> list[Json]:
        out = self._close()
        if event.reason is FinishReason.LENGTH:
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
        else:
            self.response["status"] = "completed"
        self.response["usage"] = self._usage_json()
        return [*out, self._event(f"response.{self.status}", response=self._snapshot())]

    def _error(self, event: StreamError) -> list[Json]:
        return self.fail(error_from_event(event))

    # -- closing an item

    def _close(self, status: str = "completed") -> list[Json]:
        opened, self._open = self._open, None
        if opened is None:
            return []
        text = "".join(opened.text)
        events = _CLOSERS[opened.kind](self, opened, text, self._where(opened), status)
        return [*events, self._event("response.output_item.done", output_index=opened.index,
                                     item=_copy(opened.item))]

    def _close_message(self, opened: _Open, text: str, where: Json, status: str) -> list[Json]:
        opened.item.update(status=status, content=[_text_part(text)])
        return [self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, content_index=0, part=_text_part(text))]

    def _close_reasoning(self, opened: _Open, text: str, where: Json, status: str) -> list[Json]:
        opened.item["summary"] = [_summary(text)]
        return [self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=text),
                self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                            part=_summary(text))]

    def _close_call(self, opened: _Open, text: str, where: Json, status: str) -> list[Json]:
        arguments = text or "{}"
        opened.item.update(status=status, arguments=arguments)
        return [self._event("response.function_call_arguments.done", **where, arguments=arguments)]

    def _close_mcp(self, opened: _Open, text: str, where: Json, status: str) -> list[Json]:
        arguments = text or "{}"
        failed = status != "completed" or opened.item["error"] is not None
        opened.item.update(status="failed" if failed else "completed", arguments=arguments)
        return [self._event("response.mcp_call_arguments.done", **where, arguments=arguments)]

    def _usage_json(self) -> Json:
        prompt, completion = (self._usage.input_tokens, self._usage.output_tokens) if self._usage else (0, 0)
        reasoning = min(completion, count_text("".join(self._reasoning))) if self._reasoning else 0
        return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": prompt + completion}

    _HANDLERS: dict[type, Callable[[ResponseStream, Any], list[Json]]] = {
        TextDelta: _text,
        ThinkingDelta: _thinking,
        ToolCallStart: _tool_start,
        ToolCallArgsDelta: _tool_args,
        ToolCallResult: _tool_result,
        Usage: _remember_usage,
        Finish: _finish,
        StreamError: _error,
    }


_CLOSERS: dict[str, Callable[[ResponseStream, _Open, str, Json, str], list[Json]]] = {
    "message": ResponseStream._close_message,
    "reasoning": ResponseStream._close_reasoning,
    "function_call": ResponseStream._close_call,
    "mcp_call": ResponseStream._close_mcp,
}


def _failure_code(exc: GatewayError) -> str:
    """``response.error.code`` takes only OpenAI's own values (the SDK's ``ResponseError``): no
    capacity is ``rate_limit_exceeded`` (clients back off), any other failure ``server_error``."""
    return "rate_limit_exceeded" if exc.status in (429, 503) else "server_error"


def _text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _summary(text: str) -> Json:
    return {"type": "summary_text", "text": text}


def _copy(item: Json) -> Json:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in item.items()}


def build_response(events: Iterable[Event], request: ResponsesRequest, *, response_id: str,
                   created: int) -> Json:
    """The non-streaming response object; a StreamError raises its GatewayError."""
    stream = ResponseStream(request, response_id=response_id, created=created)
    for event in events:
        if isinstance(event, StreamError):
            raise error_from_event(event)
        stream.feed(event)
        if stream.done:
            return stream.response
    raise InternalError("the response stream ended without a finish event")
