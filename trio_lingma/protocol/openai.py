"""The OpenAI Chat Completions wire adapter (sans-IO), both directions.

Theory of operation
-------------------
*Requests* are parsed by :mod:`.openai_request` (re-exported here).

*Responses.* The core hands us a shaped event stream: content events, then ``Usage`` right
before ``Finish``, or a ``StreamError`` instead. :class:`ChunkStream` turns it into
``chat.completion.chunk`` objects: a first chunk carrying ``role``; content, reasoning and
tool-call deltas (each tool call keeps the ``index`` it got when it first appeared, which is how
OpenAI clients stitch argument fragments together); a final chunk with an empty delta and
``finish_reason``; and, when ``stream_options.include_usage`` was set, one more chunk with
``choices: []`` and the usage (every other chunk then says ``usage: null``). A failure after
headers were sent cannot change the status, so it is streamed as ``{"error": {...}}``, the shape
OpenAI itself uses mid-stream, and the route then writes nothing more: no ``data: [DONE]``, so
clients see the stream did not complete. :func:`build_completion` folds the chunks of the same
stream into one ``chat.completion`` object. :func:`error_body` is the single place deciding
error ``type``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ..errors import GatewayError, InternalError, error_from_event
from . import sse
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
from .openai_request import WireChatRequest, parse_chat_request

__all__ = [
    "ChunkStream",
    "WireChatRequest",
    "build_completion",
    "error_body",
    "models_list",
    "new_completion_id",
    "parse_chat_request",
]

# --- responses ---------------------------------------------------------------------------

_FINISH_REASONS = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.STOP_SEQUENCE: "stop",
    FinishReason.TOOL_USE: "tool_calls",
    FinishReason.CANCELLED: "stop",
}


def _usage_json(usage: Usage | None) -> dict[str, int]:
    prompt, completion = (usage.input_tokens, usage.output_tokens) if usage else (0, 0)
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class ChunkStream:
    """Turns the internal event stream into ``chat.completion.chunk`` objects (sans-IO)."""

    def __init__(self, *, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        self._text_frame = sse.Template(self._chunk({"content": sse.Template.SLOT}))
        self._tool_index: dict[str, int] = {}
        self._usage: Usage | None = None
        self._outcome: Literal["finished", "failed"] | None = None

    def __repr__(self) -> str:
        return f"<ChunkStream {self._head['id']} tools={len(self._tool_index)} outcome={self._outcome}>"

    @property
    def done(self) -> bool:
        """A terminal event (Finish or StreamError) was fed; later events are ignored."""
        return self._outcome is not None

    @property
    def succeeded(self) -> bool:
        """The stream ended with Finish: the route should now write ``data: [DONE]``."""
        return self._outcome == "finished"

    def first(self) -> dict[str, Any]:
        """The opening chunk, announcing the assistant role."""
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, event: Event) -> list[dict[str, Any]]:
        """The chunks (possibly none) that ``event`` produces."""
        if self.done:
            return []
        return self._HANDLERS[type(event)](self, event)

    def frames(self, event: Event) -> bytes:
        """:meth:`feed` as SSE frames; a text delta fills a pre-rendered frame."""
        if type(event) is TextDelta and self._outcome is None:
            return self._text_frame.render(event.text) if event.text else b""
        return b"".join(sse.encode_event(chunk) for chunk in self.feed(event))

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = {**self._head, "choices": [choice]}
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _text(self, event: TextDelta) -> list[dict[str, Any]]:
        return [self._chunk({"content": event.text})] if event.text else []

    def _thinking(self, event: ThinkingDelta) -> list[dict[str, Any]]:
        return [self._chunk({"reasoning_content": event.text})] if event.text else []

    def _tool_start(self, event: ToolCallStart) -> list[dict[str, Any]]:
        index = self._tool_index.setdefault(event.id, len(self._tool_index))
        function = {"name": event.name, "arguments": ""}
        call = {"index": index, "id": event.id, "type": "function", "function": function}
        return [self._chunk({"tool_calls": [call]})]

    def _tool_args(self, event: ToolCallArgsDelta) -> list[dict[str, Any]]:
        # A delta for a call never started cannot happen in a shaped stream; index it anyway.
        index = self._tool_index.setdefault(event.id, len(self._tool_index))
        call = {"index": index, "function": {"arguments": event.json}}
        return [self._chunk({"tool_calls": [call]})] if event.json else []

    def _tool_result(self, event: ToolCallResult) -> list[dict[str, Any]]:
        # A result is a role "tool" message in OpenAI's model, which one assistant message (or
        # its chunks) cannot carry. Lingma already folded it into the answer that follows, and
        # finish_reason stays "stop", so clients see what ran without being asked to run it.
        # TOOL_BRIDGE=text shows results as text lines instead (protocol.agent_tools.ToolPresenter).
        return []

    def _remember_usage(self, event: Usage) -> list[dict[str, Any]]:
        self._usage = event
        return []

    def _finish(self, event: Finish) -> list[dict[str, Any]]:
        self._outcome = "finished"
        chunks = [self._chunk({}, _FINISH_REASONS[event.reason])]
        if self._include_usage:
            chunks.append({**self._head, "choices": [], "usage": _usage_json(self._usage)})
        return chunks

    def _error(self, event: StreamError) -> list[dict[str, Any]]:
        self._outcome = "failed"
        return [error_body(error_from_event(event))]

    _HANDLERS: dict[type, Callable[[ChunkStream, Any], list[dict[str, Any]]]] = {
        TextDelta: _text,
        ThinkingDelta: _thinking,
        ToolCallStart: _tool_start,
        ToolCallArgsDelta: _tool_args,
        ToolCallResult: _tool_result,
        Usage: _remember_usage,
        Finish: _finish,
        StreamError: _error,
    }


def build_completion(
    events: Iterable[Event], *, completion_id: str, model: str, created: int
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object; a StreamError raises its GatewayError.

    It folds the chunks :class:`ChunkStream` makes of the same events (as a client's
    accumulator would), so the two responses can never disagree.
    """
    stream = ChunkStream(completion_id=completion_id, model=model, created=created, include_usage=True)
    folded = _CompletionBuilder()
    for event in events:
        if isinstance(event, StreamError):
            raise error_from_event(event)
        for chunk in stream.feed(event):
            folded.add(chunk)
        if stream.done:
            break
    if not stream.succeeded:
        raise InternalError("the response stream ended without a finish event")
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [folded.choice()],
        "usage": folded.usage,
    }


class _CompletionBuilder:
    """Fold ``chat.completion.chunk`` objects into the one message they describe."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, int] = _usage_json(None)

    def add(self, chunk: dict[str, Any]) -> None:
        if not chunk["choices"]:  # the usage chunk
            self.usage = chunk["usage"]
            return
        choice = chunk["choices"][0]
        delta = choice["delta"]
        self.text.append(delta.get("content") or "")
        if "reasoning_content" in delta:
            self.thinking.append(delta["reasoning_content"])
        for piece in delta.get("tool_calls", ()):
            self._add_call(piece)
        self.finish_reason = choice["finish_reason"] or self.finish_reason

    def _add_call(self, piece: dict[str, Any]) -> None:
        blank = {"id": piece.get("id", ""), "type": "function", "function": {"name": "", "arguments": ""}}
        call = self.calls.setdefault(piece["index"], blank)
        function = piece["function"]
        call["function"]["name"] = function.get("name") or call["function"]["name"]
        call["function"]["arguments"] += function.get("arguments", "")

    def choice(self) -> dict[str, Any]:
        text = "".join(self.text)
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not self.calls else None}
        if self.thinking:
            message["reasoning_content"] = "".join(self.thinking)
        if self.calls:
            message["tool_calls"] = [_with_default_args(c) for c in self.calls.values()]
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}


def _with_default_args(call: dict[str, Any]) -> dict[str, Any]:
    # OpenAI always sends a JSON object string; a call with no argument deltas had none.
    if not call["function"]["arguments"]:
        call["function"]["arguments"] = "{}"
    return call


# --- errors, models, ids -------------------------------------------------------------------

# OpenAI's error ``type`` by status. OpenAI documents invalid_request_error (400/404/413),
# authentication_error (401), permission_error (403) and server_error (500). For the rest we
# name whose fault it is: the gateway's queue (429 rate_limit_error), Lingma (502/504
# upstream_error), or no capacity (503 service_unavailable_error). ``code`` says exactly what
# happened (queue_timeout, upstream_closed, ...). SDKs pick exception classes by status only.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "upstream_error",
}


def error_body(exc: GatewayError) -> dict[str, Any]:
    """The OpenAI error object for ``exc`` (HTTP status is ``exc.status``)."""
    fallback = "invalid_request_error" if exc.status < 500 else "server_error"
    error_type = _ERROR_TYPES.get(exc.status, fallback)
    return {"error": {"message": exc.message, "type": error_type, "param": exc.param, "code": exc.code}}


def models_list(models: Iterable[tuple[str, str]], created: int) -> dict[str, Any]:
    """``GET /v1/models``: ``(model id, display name)`` pairs as OpenAI model objects."""
    data = [
        # display_name is an extra field (OpenAI's model object has none); SDKs keep extras.
        {"id": model_id, "object": "model", "created": created, "owned_by": "lingma", "display_name": name}
        for model_id, name in models
    ]
    return {"object": "list", "data": data}


def new_completion_id() -> str:
    """A fresh ``chatcmpl-…`` id."""
    return f"chatcmpl-{secrets.token_hex(16)}"
