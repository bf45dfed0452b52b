"""Anthropic Messages API <-> the protocol-neutral model: sans-IO and synchronous.

Theory of operation
-------------------
Requests. :func:`parse_messages_request` validates a decoded JSON body against Anthropic's
public Messages API and returns a :class:`ChatRequest`. A failure is an :class:`InvalidRequest`
whose message starts with the dotted path Anthropic itself reports (``max_tokens: Field
required``, ``messages.1.content.0.type: ...``) and whose ``param`` is that path. Unknown fields
are tolerated everywhere, as the real API tolerates fields newer clients send (``service_tier``,
``container``, ``mcp_servers``, ``context_management``, ``cache_control``, ...).

Conversation mapping: a user message's ``tool_result`` blocks become ``Message(role="tool")``
entries, in order, followed by one user message with the rest of its text and images; an
assistant's ``tool_use`` blocks become ``Message.tool_calls`` (arguments: compact JSON of
``input``). ``thinking``/``redacted_thinking`` and server-tool blocks of earlier turns are
accepted and not sent upstream: Lingma cannot verify or use them.

System: text blocks joined by a blank line. A block starting ``x-anthropic-billing-header:``
(Claude Code sends one first) is dropped: it is billing metadata for Anthropic, not an
instruction, and it changes with every Claude Code version, which would defeat prefix-based
session reuse and make the model read noise. Anthropic-defined tools (a ``type`` other than
``custom``: ``web_search_20250305``, ``bash_20250124``, ...) are accepted and dropped: they carry
no schema that Lingma could use and no one here can execute them.

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
import re
import secrets
import string
from collections.abc import Iterable
from typing import Any, Literal, NoReturn

from ..errors import GatewayError, InternalError, InvalidRequest, error_from_event
from .conversation import ChatRequest, Image, Message, ToolCall, ToolSpec
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
    "new_tool_use_id",
    "parse_count_tokens_request",
    "parse_messages_request",
]

SseEvent = tuple[str, dict[str, Any]]
"""``(event name, JSON payload)``; the name always equals ``payload["type"]``."""

ExecutedTools = Literal["tool_use", "mcp"]
"""How calls Lingma executed itself are encoded (see the module docstring)."""

#: ``server_name`` of the ``mcp_tool_use`` blocks for Lingma-executed tools.
LINGMA_TOOL_SERVER = "lingma"

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

Path = tuple[str | int, ...]
_Part = str | Image | ToolCall | Message | None

# --------------------------------------------------------------------------- validation kit
# Messages follow pydantic's wording, which is what Anthropic's API answers with.


def _fail(path: Path, message: str) -> NoReturn:
    where = ".".join(str(p) for p in path)
    raise InvalidRequest(f"{where}: {message}" if where else message, param=where or None)


def _required(obj: dict[str, Any], key: str, path: Path) -> Any:
    if key not in obj:
        _fail(path + (key,), "Field required")
    return obj[key]


def _as_dict(value: object, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(path, "Input should be a valid dictionary")
    return value


def _as_list(value: object, path: Path) -> list[Any]:
    if not isinstance(value, list):
        _fail(path, "Input should be a valid list")
    return value


def _as_str(value: object, path: Path) -> str:
    if not isinstance(value, str):
        _fail(path, "Input should be a valid string")
    return value


def _as_bool(value: object, path: Path) -> bool:
    if not isinstance(value, bool):
        _fail(path, "Input should be a valid boolean")
    return value


def _as_int(value: object, path: Path, *, ge: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, "Input should be a valid integer")
    if ge is not None and value < ge:
        _fail(path, f"Input should be greater than or equal to {ge}")
    return value


def _as_unit(value: object, path: Path) -> float:
    """A number in [0, 1] (temperature, top_p)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, "Input should be a valid number")
    if value < 0:
        _fail(path, "Input should be greater than or equal to 0")
    if value > 1:
        _fail(path, "Input should be less than or equal to 1")
    return float(value)


def _tag(raw: dict[str, Any], path: Path, expected: Iterable[str]) -> str:
    tags = tuple(expected)
    kind = _required(raw, "type", path)
    if kind not in tags:
        listed = ", ".join(f"'{t}'" for t in tags)
        _fail(
            path + ("type",),
            f"Input tag '{kind}' found using 'type' does not match any of the expected tags: {listed}",
        )
    return str(kind)


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- requests


def parse_messages_request(body: object) -> ChatRequest:
    """Validate a ``POST /v1/messages`` body; raise :class:`InvalidRequest` naming the path."""
    return _parse_request(body, max_tokens_required=True)


def parse_count_tokens_request(body: object) -> ChatRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body (same schema, no ``max_tokens``)."""
    return _parse_request(body, max_tokens_required=False)


def _parse_request(body: object, *, max_tokens_required: bool) -> ChatRequest:
    top = _as_dict(body, ())
    model = _as_str(_required(top, "model", ()), ("model",))
    max_tokens = _max_tokens(top) if max_tokens_required else None
    messages = _messages(_required(top, "messages", ()))
    _check_extras(top)
    return ChatRequest(
        model=model,
        messages=messages,
        system=_system(top.get("system")),
        stream=_as_bool(top["stream"], ("stream",)) if top.get("stream") is not None else False,
        max_tokens=max_tokens,
        stop=_stop_sequences(top.get("stop_sequences")),
        temperature=_optional_unit(top, "temperature"),
        top_p=_optional_unit(top, "top_p"),
        thinking=_thinking(top.get("thinking"), max_tokens),
        tools=_tools(top.get("tools")),
        tool_choice=_tool_choice(top.get("tool_choice")),
        parallel_tool_calls=not _no_parallel(top.get("tool_choice")),
        tool_id_prefix="toolu_",
        include_usage=True,  # Anthropic always reports usage
    )


def _max_tokens(top: dict[str, Any]) -> int:
    return _as_int(_required(top, "max_tokens", ()), ("max_tokens",), ge=1)


def _optional_unit(top: dict[str, Any], key: str) -> float | None:
    value = top.get(key)
    return None if value is None else _as_unit(value, (key,))


def _check_extras(top: dict[str, Any]) -> None:
    """Fields validated as Anthropic does but not sent upstream (Lingma has no knob for them)."""
    if top.get("top_k") is not None:
        _as_int(top["top_k"], ("top_k",), ge=0)
    if top.get("metadata") is not None:
        metadata = _as_dict(top["metadata"], ("metadata",))
        if metadata.get("user_id") is not None:
            _as_str(metadata["user_id"], ("metadata", "user_id"))


def _stop_sequences(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = _as_list(value, ("stop_sequences",))
    return tuple(_as_str(s, ("stop_sequences", i)) for i, s in enumerate(items))


def _system(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    blocks = _as_list(value, ("system",))
    texts = [_system_block(block, ("system", i)) for i, block in enumerate(blocks)]
    return "\n\n".join(t for t in texts if t and not t.startswith(BILLING_HEADER_PREFIX))


def _system_block(value: object, path: Path) -> str:
    raw = _as_dict(value, path)
    _tag(raw, path, ["text"])
    return _as_str(_required(raw, "text", path), path + ("text",))


def _thinking(value: object, max_tokens: int | None) -> bool:
    if value is None:
        return False
    path: Path = ("thinking",)
    raw = _as_dict(value, path)
    kind = _tag(raw, path, ["enabled", "disabled", "adaptive"])
    if kind == "enabled":
        budget_path = path + ("budget_tokens",)
        budget = _as_int(_required(raw, "budget_tokens", path), budget_path, ge=1024)
        if max_tokens is not None and budget >= max_tokens:
            _fail(budget_path, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return kind != "disabled"


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _tools(value: object) -> tuple[ToolSpec, ...]:
    if value is None:
        return ()
    items = _as_list(value, ("tools",))
    specs = (_tool(item, ("tools", i)) for i, item in enumerate(items))
    return tuple(spec for spec in specs if spec is not None)


def _tool(value: object, path: Path) -> ToolSpec | None:
    raw = _as_dict(value, path)
    name = _as_str(_required(raw, "name", path), path + ("name",))
    if raw.get("type") not in (None, "custom"):
        return None  # Anthropic-defined tool: see the module docstring
    if not _TOOL_NAME.match(name):
        _fail(path + ("name",), f"String should match pattern '{_TOOL_NAME.pattern}'")
    schema = _as_dict(_required(raw, "input_schema", path), path + ("input_schema",))
    if schema.get("type") != "object":
        _fail(path + ("input_schema", "type"), "Input should be 'object'")
    description = raw.get("description")
    return ToolSpec(
        name=name,
        description="" if description is None else _as_str(description, path + ("description",)),
        parameters=schema,
    )


def _no_parallel(value: object) -> bool:
    """``tool_choice.disable_parallel_tool_use: true`` (validated by :func:`_tool_choice`)."""
    return isinstance(value, dict) and value.get("disable_parallel_tool_use") is True


def _tool_choice(value: object) -> str | dict[str, str] | None:
    """Protocol-neutral: ``"auto" | "required" | "none" | {"name": <tool>}`` (None: not given)."""
    if value is None:
        return None
    path: Path = ("tool_choice",)
    raw = _as_dict(value, path)
    kind = _tag(raw, path, ["auto", "any", "tool", "none"])
    if raw.get("disable_parallel_tool_use") is not None:
        _as_bool(raw["disable_parallel_tool_use"], path + ("disable_parallel_tool_use",))
    if kind == "tool":
        return {"name": _as_str(_required(raw, "name", path), path + ("name",))}
    return {"auto": "auto", "any": "required", "none": "none"}[kind]


# --------------------------------------------------------------------------- messages


def _messages(value: object) -> tuple[Message, ...]:
    items = _as_list(value, ("messages",))
    if not items:
        _fail(("messages",), "at least one message is required")
    out: list[Message] = []
    for i, item in enumerate(items):
        out.extend(_message(item, ("messages", i)))
    return tuple(out)


def _message(value: object, path: Path) -> list[Message]:
    raw = _as_dict(value, path)
    role = _required(raw, "role", path)
    if role not in ("user", "assistant"):
        _fail(path + ("role",), "Input should be 'user' or 'assistant'")
    content = _required(raw, "content", path)
    if isinstance(content, str):
        return [Message(role=role, text=content)]
    if not isinstance(content, list):
        _fail(path + ("content",), "Input should be a valid string or a list of content blocks")
    parsers = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    parts = [_block(b, path + ("content", j), parsers) for j, b in enumerate(content)]
    return _assemble(role, parts)


def _block(value: object, path: Path, parsers: dict[str, Any]) -> _Part:
    raw = _as_dict(value, path)
    kind = _tag(raw, path, parsers)
    parser = parsers[kind]
    return None if parser is None else parser(raw, path)  # type: ignore[no-any-return]


def _assemble(role: str, parts: list[_Part]) -> list[Message]:
    """Tool results first (one message each, in order), then the rest of the turn."""
    results = [p for p in parts if isinstance(p, Message)]
    texts = [p for p in parts if isinstance(p, str)]
    images = tuple(p for p in parts if isinstance(p, Image))
    calls = tuple(p for p in parts if isinstance(p, ToolCall))
    if results and not (texts or images or calls):
        return results
    rest = Message(role=role, text="\n".join(texts), images=images, tool_calls=calls)  # type: ignore[arg-type]
    return [*results, rest]


def _text_block(raw: dict[str, Any], path: Path) -> str:
    return _as_str(_required(raw, "text", path), path + ("text",))


_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _image_block(raw: dict[str, Any], path: Path) -> Image:
    path = path + ("source",)
    source = _as_dict(_required(raw, "source", path[:-1]), path)
    if _tag(source, path, ["base64", "url"]) == "url":
        return Image(url=_as_str(_required(source, "url", path), path + ("url",)))
    media_type = _required(source, "media_type", path)
    if media_type not in _MEDIA_TYPES:
        listed = ", ".join(f"'{m}'" for m in _MEDIA_TYPES)
        _fail(path + ("media_type",), f"Input should be {listed}")
    data = _as_str(_required(source, "data", path), path + ("data",))
    return Image(media_type=media_type, data=data)


def _document_block(raw: dict[str, Any], path: Path) -> str:
    """Only documents that carry text can be passed on (Lingma takes no PDFs)."""
    path = path + ("source",)
    source = _as_dict(_required(raw, "source", path[:-1]), path)
    if _tag(source, path, ["text", "content", "base64", "url"]) == "text":
        return _as_str(_required(source, "data", path), path + ("data",))
    if source["type"] == "content":
        content = _required(source, "content", path)
        return content if isinstance(content, str) else _result_parts(content, path + ("content",))[0]
    _fail(path + ("type",), "only 'text' and 'content' document sources are supported by this gateway")


def _tool_use_block(raw: dict[str, Any], path: Path) -> ToolCall:
    return ToolCall(
        id=_as_str(_required(raw, "id", path), path + ("id",)),
        name=_as_str(_required(raw, "name", path), path + ("name",)),
        arguments=_compact_json(_as_dict(_required(raw, "input", path), path + ("input",))),
    )


def _tool_result_block(raw: dict[str, Any], path: Path) -> Message:
    tool_use_id = _as_str(_required(raw, "tool_use_id", path), path + ("tool_use_id",))
    content = raw.get("content")
    text, images = ("", ()) if content is None else _result_parts(content, path + ("content",))
    is_error = raw.get("is_error")
    return Message(
        role="tool",
        tool_call_id=tool_use_id,
        text=text,
        images=images,
        is_error=False if is_error is None else _as_bool(is_error, path + ("is_error",)),
    )


def _result_parts(content: object, path: Path) -> tuple[str, tuple[Image, ...]]:
    """A tool_result's content: a string or text/image/document blocks."""
    if isinstance(content, str):
        return content, ()
    blocks = _as_list(content, path)
    parts = [_block(b, path + (i,), _RESULT_BLOCKS) for i, b in enumerate(blocks)]
    text = "\n".join(p for p in parts if isinstance(p, str))
    return text, tuple(p for p in parts if isinstance(p, Image))


_RESULT_BLOCKS: dict[str, Any] = {
    "text": _text_block,
    "image": _image_block,
    "document": _document_block,
}
_USER_BLOCKS: dict[str, Any] = {**_RESULT_BLOCKS, "tool_result": _tool_result_block}
# None: accepted from earlier turns, not sent upstream (see the module docstring).
_ASSISTANT_BLOCKS: dict[str, Any] = {
    "text": _text_block,
    "tool_use": _tool_use_block,
    "thinking": None,
    "redacted_thinking": None,
    "server_tool_use": None,
    "web_search_tool_result": None,
    "web_fetch_tool_result": None,
    "code_execution_tool_result": None,
    "mcp_tool_use": None,
    "mcp_tool_result": None,
}


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

    def start(self) -> list[SseEvent]:
        """The single ``message_start`` event."""
        if self._started:
            raise RuntimeError("MessageStream.start() called twice")
        self._started = True
        usage = _usage_body(self._input_tokens, 0)
        message = {
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


def new_tool_use_id() -> str:
    """A fresh ``toolu_...`` id."""
    return _random_id("toolu_")
