"""Anthropic Messages API requests -> the protocol-neutral :class:`ChatRequest` (sans-IO).

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
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NoReturn

from ..errors import InvalidRequest
from .conversation import ChatRequest, Image, Message, ToolCall, ToolChoice, ToolSpec
from .jsonutil import compact_json

__all__ = ["BILLING_HEADER_PREFIX", "parse_count_tokens_request", "parse_messages_request"]

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


def _tool_choice(value: object) -> ToolChoice:
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
    return _CHOICES[kind]


_CHOICES: dict[str, ToolChoice] = {"auto": "auto", "any": "required", "none": "none"}


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
    return None if parser is None else parser(raw, path)


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
        arguments=compact_json(_as_dict(_required(raw, "input", path), path + ("input",))),
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
