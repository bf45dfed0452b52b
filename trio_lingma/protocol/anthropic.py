"""Anthropic Messages API responses, streamed and not, and its errors: sans-IO.

Requests are parsed by :mod:`.anthropic_request` (re-exported here).

Theory of operation
-------------------
Responses. The core delivers an already shaped stream: content events, one ``Usage`` right
before ``Finish``, or a ``StreamError``. :class:`MessageStream` is the only encoder of it
(``message_start`` -> blocks ``content_block_start``/``content_block_delta``*/
``content_block_stop`` with indices 0, 1, 2... -> ``message_delta`` -> ``message_stop``, or an
``error`` event after closing the open block). :func:`build_message` (non-stream) folds that
same encoder's output into a Message, so stream and non-stream answers cannot disagree.

Tools Lingma ran itself (``ToolCallStart.executed``, agent mode) must never look like a request
for the client to run them: a ``tool_use`` block obliges the client to answer with a
``tool_result`` (the real API rejects the next turn otherwise) and agent clients act on
``tool_use`` blocks whatever the ``stop_reason``. With ``executed_tools="mcp"`` (the gateway's
``TOOL_BRIDGE=bridge``) they are therefore encoded the way Anthropic itself reports a tool it
executed on the caller's behalf: an ``mcp_tool_use`` block (``server_name: "lingma"``, input
streamed as ``input_json_delta``) and, when Lingma reports the outcome, an ``mcp_tool_result``
block (``tool_use_id``, ``is_error``, text content) — both validate as the SDK's
``BetaMCPToolUseBlock``/``BetaMCPToolResultBlock``, and the turn still ends ``end_turn``. The
default (``"tool_use"``) shows every call as ``tool_use`` and no results.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import string
from collections.abc import Iterable
from typing import Any, Literal

from ..errors import GatewayError, InternalError, error_from_event
from . import sse
from .anthropic_request import BILLING_HEADER_PREFIX, parse_count_tokens_request, parse_messages_request
from .conversation import ChatRequest
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
from .tokens import count_input_tokens

__all__ = [
    "BILLING_HEADER_PREFIX",
    "ExecutedTools",
    "LINGMA_TOOL_SERVER",
    "MessageStream",
    "SseEvent",
    "build_message",
    "count_tokens_response",
    "error_body",
    "error_type",
    "new_message_id",
    "parse_count_tokens_request",
    "parse_messages_request",
]


SseEvent = tuple[str, dict[str, Any]]
"""``(event name, JSON payload)``; the name always equals ``payload["type"]``."""

ExecutedTools = Literal["tool_use", "mcp"]
"""How calls Lingma executed itself are encoded (see the module docstring)."""

#: ``server_name`` of the ``mcp_tool_use`` blocks for Lingma-executed tools.
LINGMA_TOOL_SERVER = "lingma"

# --------------------------------------------------------------------------- stream encoding

_STOP_REASONS = {
    FinishReason.STOP: "end_turn",
    FinishReason.CANCELLED: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.STOP_SEQUENCE: "stop_sequence",
    FinishReason.TOOL_USE: "tool_use",
}


class MessageStream:
    """Encode one response's internal events as Anthropic stream events (sans-IO).

    Call :meth:`start` once, then :meth:`feed` every event; after a ``Finish`` or
    ``StreamError`` the stream is :attr:`done` and feeding more is a bug (``RuntimeError``).
    :meth:`ping` may be sent by the caller at any time between :meth:`start` and the end.
    """

    def __init__(
        self, *, message_id: str, model: str, input_tokens: int, executed_tools: ExecutedTools = "tool_use"
    ) -> None:
        self._message_id = message_id
        self._executed_tools = executed_tools
        self._model = model
        self._input_tokens = input_tokens
        self._started = False
        self.done = False
        self._next_index = 0
        self._open: str | None = None  # type of the open block
        self._open_tool: str | None = None  # id of the open tool_use block
        self._signature = hashlib.sha256()
        self._usage: Usage | None = None
        self._text_frame: tuple[int, sse.Template] | None = None  # (block index, its text delta frame)

    def start(self) -> list[SseEvent]:
        """The single ``message_start`` event."""
        if self._started:
            raise RuntimeError("MessageStream.start() called twice")
        self._started = True
        usage = _usage_body(self._input_tokens, 0)
        message: dict[str, Any] = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def ping(self) -> SseEvent:
        """A keep-alive event; the route decides when (e.g. after N seconds of upstream silence)."""
        return ("ping", {"type": "ping"})

    def feed(self, event: Event) -> list[SseEvent]:
        """The stream events for one internal event (possibly none)."""
        if not self._started or self.done:
            raise RuntimeError(f"MessageStream.feed({event!r}) {'after end' if self.done else 'before start()'}")
        match event:
            case TextDelta(text=text):
                return self._content("text", {"type": "text", "text": ""}, "text_delta", text)
            case ThinkingDelta(text=text):
                block = {"type": "thinking", "thinking": "", "signature": ""}
                return self._content("thinking", block, "thinking_delta", text)
            case ToolCallStart():
                return self._tool_start(event)
            case ToolCallArgsDelta():
                return self._tool_args(event)
            case ToolCallResult():
                return self._tool_result(event)
            case Usage():
                self._usage = event
                return []
            case Finish():
                return self._finish(event)
            case StreamError():
                return self._error(event)
        raise TypeError(f"not an internal event: {event!r}")

    def parts(self, event: Event) -> list[SseEvent | bytes]:
        """:meth:`feed`, except that a text delta into the open text block comes as its SSE frame,
        rendered from a template made once per block (the stream's hot path: no dicts, no JSON)."""
        if type(event) is TextDelta and event.text and self._open == "text" and not self.done:
            index = self._next_index - 1
            if self._text_frame is None or self._text_frame[0] != index:
                name, payload = self._delta({"type": "text_delta", "text": sse.Template.SLOT})
                self._text_frame = (index, sse.Template(payload, event=name))
            return [self._text_frame[1].render(event.text)]
        return [*self.feed(event)]

    # -- blocks

    def _content(self, kind: str, block: dict[str, Any], delta_type: str, text: str) -> list[SseEvent]:
        if not text:
            return []  # never open a block for nothing
        out = [] if self._open == kind else [*self._close(), *self._open_block(block)]
        if kind == "thinking":
            self._signature.update(text.encode())
        return [*out, self._delta({"type": delta_type, kind: text})]

    def _tool_start(self, event: ToolCallStart) -> list[SseEvent]:
        block: dict[str, Any] = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
        if event.executed and self._executed_tools == "mcp":
            block = {"type": "mcp_tool_use", "id": event.id, "name": event.name,
                     "server_name": LINGMA_TOOL_SERVER, "input": {}}
        out = [*self._close(), *self._open_block(block)]
        self._open_tool = event.id
        return out

    def _tool_args(self, event: ToolCallArgsDelta) -> list[SseEvent]:
        if self._open_tool != event.id:
            # Anthropic cannot interleave blocks: the core must keep each call's pieces together.
            raise ValueError(f"arguments for tool call {event.id!r}, which is not the open block")
        if not event.json:
            return []
        return [self._delta({"type": "input_json_delta", "partial_json": event.json})]

    def _tool_result(self, event: ToolCallResult) -> list[SseEvent]:
        if self._executed_tools != "mcp":
            return self._close() if self._open_tool == event.id else []  # only the call is shown
        content = [{"type": "text", "text": event.content}] if event.content else []
        block = {"type": "mcp_tool_result", "tool_use_id": event.id, "is_error": event.is_error,
                 "content": content}
        return [*self._close(), *self._open_block(block), *self._close()]

    def _open_block(self, block: dict[str, Any]) -> list[SseEvent]:
        index = self._next_index
        self._next_index += 1
        self._open = block["type"]
        if self._open == "thinking":
            self._signature = hashlib.sha256(f"{self._message_id}:{index}:".encode())
        payload = {"type": "content_block_start", "index": index, "content_block": block}
        return [("content_block_start", payload)]

    def _delta(self, delta: dict[str, Any]) -> SseEvent:
        payload = {"type": "content_block_delta", "index": self._next_index - 1, "delta": delta}
        return ("content_block_delta", payload)

    def _close(self) -> list[SseEvent]:
        if self._open is None:
            return []
        out = []
        if self._open == "thinking":
            # Opaque and deterministic; we cannot sign as Anthropic, and a signature a client
            # echoes back in a later turn is ignored (thinking is not sent upstream).
            signature = base64.b64encode(self._signature.digest()).decode()
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        stop = {"type": "content_block_stop", "index": self._next_index - 1}
        self._open = self._open_tool = None
        return [*out, ("content_block_stop", stop)]

    # -- terminal events

    def _finish(self, event: Finish) -> list[SseEvent]:
        out = self._close()
        usage = self._usage or Usage(input_tokens=self._input_tokens, output_tokens=0)
        delta = {"stop_reason": _STOP_REASONS[event.reason], "stop_sequence": event.stop_sequence}
        body = _usage_body(usage.input_tokens, usage.output_tokens)
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": body}))
        out.append(("message_stop", {"type": "message_stop"}))
        self.done = True
        return out

    def _error(self, event: StreamError) -> list[SseEvent]:
        out = self._close()  # never leave a started block unmentioned
        _, body = error_body(error_from_event(event))
        out.append(("error", body))
        self.done = True
        return out


def _usage_body(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


# --------------------------------------------------------------------------- non-stream


def build_message(
    events: Iterable[Event], *, message_id: str, model: str, executed_tools: ExecutedTools = "tool_use"
) -> dict[str, Any]:
    """The non-stream Message for a finished event stream; a StreamError raises its GatewayError."""
    stream = MessageStream(message_id=message_id, model=model, input_tokens=0, executed_tools=executed_tools)
    builder = _MessageBuilder()
    builder.add_all(stream.start())
    for event in events:
        if isinstance(event, StreamError):
            raise error_from_event(event)
        builder.add_all(stream.feed(event))
    if not stream.done:
        raise InternalError("the response ended without a finish event")
    return builder.message


class _MessageBuilder:
    """Fold stream events into the Message they describe (what the SDK's accumulator does)."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self._json: dict[int, str] = {}

    def add_all(self, items: list[SseEvent]) -> None:
        for name, payload in items:
            getattr(self, f"_on_{name}")(payload)

    def _on_message_start(self, payload: dict[str, Any]) -> None:
        self.message = copy.deepcopy(payload["message"])

    def _on_content_block_start(self, payload: dict[str, Any]) -> None:
        self.message["content"].append(dict(payload["content_block"]))

    def _on_content_block_delta(self, payload: dict[str, Any]) -> None:
        block, delta, index = self.message["content"][payload["index"]], payload["delta"], payload["index"]
        if delta["type"] == "input_json_delta":
            self._json[index] = self._json.get(index, "") + delta["partial_json"]
        elif delta["type"] == "signature_delta":
            block["signature"] = delta["signature"]
        else:  # text_delta / thinking_delta carry their text under the block's own key
            key = block["type"]
            block[key] += delta[key]

    def _on_content_block_stop(self, payload: dict[str, Any]) -> None:
        index = payload["index"]
        if index in self._json:
            self.message["content"][index]["input"] = json.loads(self._json.pop(index))

    def _on_message_delta(self, payload: dict[str, Any]) -> None:
        self.message.update(payload["delta"])
        self.message["usage"].update(payload["usage"])

    def _on_message_stop(self, payload: dict[str, Any]) -> None:
        pass


# --------------------------------------------------------------------------- errors, ids, count

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",  # queue wait exceeded / no instance ready: retry later
    504: "timeout_error",  # Anthropic's own type for 504 (anthropic.types.GatewayTimeoutError)
    529: "overloaded_error",
}


def error_type(exc: GatewayError) -> str:
    """Anthropic's ``error.type`` for an exception (by its HTTP status)."""
    fallback = "api_error" if exc.status >= 500 else "invalid_request_error"
    return _ERROR_TYPES.get(exc.status, fallback)


def error_body(exc: GatewayError, *, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """``(status, {"type": "error", "error": {"type", "message"}[, "request_id"]})``."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(exc), "message": exc.message}}
    if request_id is not None:
        body["request_id"] = request_id
    return exc.status, body


def count_tokens_response(request: ChatRequest) -> dict[str, int]:
    """The count_tokens answer: the very number ``usage.input_tokens`` reports."""
    return {"input_tokens": count_input_tokens(request)}


_BASE62 = string.digits + string.ascii_letters


def _random_id(prefix: str) -> str:
    # Shaped like Anthropic's ids ("msg_01" + 22 base62 characters).
    return prefix + "01" + "".join(secrets.choice(_BASE62) for _ in range(22))


def new_message_id() -> str:
    """A fresh ``msg_...`` id."""
    return _random_id("msg_")

