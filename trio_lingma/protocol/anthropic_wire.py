"""Anthropic Messages API request bodies as frozen wire models, and Anthropic's error wording.

The models are structured by the one converter (:mod:`.convert`); they name the fields the
gateway reads or validates as Anthropic does, and every other field is tolerated (unknown keys
are ignored): ``output_config``, ``context_management``, ``container``, ``mcp_servers``,
``service_tier``, ``betas``, ``cache_control`` on any block or tool, ``citations``, ... — the
real API accepts them and none changes what Lingma can be asked.

Content blocks are tagged by ``type``, messages by ``role``. Blocks the gateway cannot pass on
but must accept from earlier turns (thinking, server-tool and MCP blocks, ...) are one
:class:`OpaqueBlock` each role lists by name, so an unknown block type is still the 400 the
real API gives. Tools: a tool without ``type`` (or ``"custom"``) is a client tool; any other
``type`` is an Anthropic-defined or server tool (:class:`OtherTool`), accepted and ignored.

:func:`explain_anthropic` words the converter's problems as Anthropic's pydantic-based API
does: the path dotted (``messages.1.content.0.type``), ``Field required``, ``Input should be a
valid integer``, ``Input tag 'video' found using 'type' does not match any of the expected
tags: ...``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs

from ..errors import InvalidRequest, shorten
from .convert import Bounds, Integral, Pattern
from .field_errors import (
    FieldError,
    Missing,
    NoMatch,
    NotOneOf,
    OutOfBounds,
    Path,
    Problem,
    UnknownTag,
    WrongKind,
    WrongLength,
    either,
    number_text,
)

__all__ = ["CountTokensRequest", "MessagesRequest", "explain_anthropic", "fail"]

# --------------------------------------------------------------------------- content blocks


@attrs.frozen(kw_only=True)
class TextBlock:
    type: Literal["text"]
    text: str


MediaType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]


@attrs.frozen(kw_only=True)
class Base64ImageSource:
    type: Literal["base64"]
    media_type: MediaType
    data: str


@attrs.frozen(kw_only=True)
class UrlImageSource:
    type: Literal["url"]
    url: str


@attrs.frozen(kw_only=True)
class ImageBlock:
    type: Literal["image"]
    source: Base64ImageSource | UrlImageSource


@attrs.frozen(kw_only=True)
class TextSource:
    type: Literal["text"]
    data: str


@attrs.frozen(kw_only=True)
class ContentSource:
    type: Literal["content"]
    content: str | tuple[TextBlock | ImageBlock, ...]


@attrs.frozen(kw_only=True)
class BinarySource:
    """A PDF or file document: Lingma reads neither; shown as a placeholder line."""

    type: Literal["base64", "url", "file"]
    media_type: str | None = None


@attrs.frozen(kw_only=True)
class DocumentBlock:
    type: Literal["document"]
    source: TextSource | ContentSource | BinarySource
    title: str | None = None


@attrs.frozen(kw_only=True)
class SearchResultBlock:
    type: Literal["search_result"]
    source: str
    title: str
    content: tuple[TextBlock, ...]


@attrs.frozen(kw_only=True)
class ToolReferenceBlock:
    """Tool search's answer: the named (deferred) tool is offered from now on."""

    type: Literal["tool_reference"]
    tool_name: str


ResultPart = TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ToolReferenceBlock


@attrs.frozen(kw_only=True)
class ToolResultBlock:
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | tuple[ResultPart, ...] | None = None
    is_error: bool | None = None


@attrs.frozen(kw_only=True)
class ToolUseBlock:
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


@attrs.frozen(kw_only=True)
class CompactionBlock:
    """A summary of the earlier conversation (``None``: a failed compaction, a no-op)."""

    type: Literal["compaction"]
    content: str | None = None


@attrs.frozen(kw_only=True)
class OpaqueBlock:
    """Blocks of earlier turns accepted and not sent upstream: Lingma can neither verify
    thinking signatures nor use results of tools it did not run."""

    type: Literal[
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "advisor_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
        "mcp_tool_listing",
        "container_upload",
        "fallback",
    ]


@attrs.frozen(kw_only=True)
class UserOpaqueBlock:
    """Files uploaded for a code-execution container: nothing Lingma can read."""

    type: Literal["container_upload"]


@attrs.frozen(kw_only=True)
class ToolChangeBlock:
    """``tool_addition``/``tool_removal`` in a system message: ``tool`` names a tool."""

    type: Literal["tool_addition", "tool_removal"]
    tool: dict[str, Any]


UserBlock = TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ToolResultBlock | UserOpaqueBlock
AssistantBlock = TextBlock | ToolUseBlock | CompactionBlock | OpaqueBlock
SystemBlock = TextBlock | ToolChangeBlock

# --------------------------------------------------------------------------- messages


@attrs.frozen(kw_only=True)
class UserMessage:
    role: Literal["user"]
    content: str | tuple[UserBlock, ...]


@attrs.frozen(kw_only=True)
class AssistantMessage:
    role: Literal["assistant"]
    content: str | tuple[AssistantBlock, ...]


@attrs.frozen(kw_only=True)
class SystemMessage:
    """Claude Code sends these anywhere in ``messages`` (environment, agent listings...)."""

    role: Literal["system"]
    content: str | tuple[SystemBlock, ...]
    clear_at: Literal["next_user_message", "never"] | None = None


WireMessage = UserMessage | AssistantMessage | SystemMessage

# --------------------------------------------------------------------------- tools


@attrs.frozen(kw_only=True)
class CustomTool:
    type: Literal["custom"] = "custom"
    name: Annotated[str, Pattern(r"^[a-zA-Z0-9_-]{1,128}$")]
    input_schema: dict[str, Any]
    description: str | None = None
    #: Offered only once a ``tool_reference`` (tool search) or ``tool_addition`` names it.
    defer_loading: bool | None = None


@attrs.frozen(kw_only=True)
class OtherTool:
    """An Anthropic-defined or server tool (``web_search_20250305``, ``bash_20250124``,
    ``mcp_toolset``...): no schema Lingma could use and no one here runs it; ignored."""

    type: str
    name: str | None = None


@attrs.frozen(kw_only=True)
class ChoiceAuto:
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


@attrs.frozen(kw_only=True)
class ChoiceAny:
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


@attrs.frozen(kw_only=True)
class ChoiceTool:
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


@attrs.frozen(kw_only=True)
class ChoiceNone:
    type: Literal["none"]


ToolChoice = ChoiceAuto | ChoiceAny | ChoiceTool | ChoiceNone

# --------------------------------------------------------------------------- request bodies


@attrs.frozen(kw_only=True)
class ThinkingEnabled:
    type: Literal["enabled"]
    budget_tokens: Annotated[int, Integral(), Bounds(1024)]


@attrs.frozen(kw_only=True)
class ThinkingOther:
    type: Literal["disabled", "adaptive", "between_tools"]


@attrs.frozen(kw_only=True)
class Metadata:
    user_id: str | None = None


Unit = Annotated[float, Bounds(0, 1)]


@attrs.frozen(kw_only=True)
class JsonOutputFormat:
    """Structured outputs: the answer is JSON valid against ``schema`` (protocol/structured.py)."""

    type: Literal["json_schema"]
    schema: dict[str, Any]


@attrs.frozen(kw_only=True)
class OutputConfig:
    format: JsonOutputFormat | None = None


@attrs.frozen(kw_only=True)
class CountTokensRequest:
    """``POST /v1/messages/count_tokens``: the fields the gateway reads or checks."""

    model: str
    messages: tuple[WireMessage, ...]
    system: str | tuple[TextBlock, ...] | None = None
    stream: bool | None = None
    stop_sequences: tuple[str, ...] | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, Integral(), Bounds(0)] | None = None
    metadata: Metadata | None = None
    thinking: ThinkingEnabled | ThinkingOther | None = None
    tools: tuple[CustomTool | OtherTool, ...] | None = None
    tool_choice: ToolChoice | None = None
    output_config: OutputConfig | None = None
    output_format: JsonOutputFormat | None = None  # the structured-outputs beta's name for it


@attrs.frozen(kw_only=True)
class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``: as count_tokens, and ``max_tokens`` is required."""

    max_tokens: Annotated[int, Integral(), Bounds(1)]


# --------------------------------------------------------------------------- errors


def explain_anthropic(found: list[Problem]) -> InvalidRequest:
    """The first problem, worded as Anthropic's API words it, ``param`` its dotted path."""
    first = found[0]
    where = ".".join(str(p) for p in first.path)
    message = _wording(first.error)
    return InvalidRequest(f"{where}: {message}" if where else message, param=where or None)


def fail(path: Path, error: FieldError | str) -> InvalidRequest:
    """An adapter's own check, explained the same way (raise the result)."""
    return explain_anthropic([Problem(path, FieldError(error) if isinstance(error, str) else error)])


_VALID = {
    "string": "a valid string",
    "integer": "a valid integer",
    "number": "a valid number",
    "boolean": "a valid boolean",
    "object": "a valid dictionary",
    "array": "a valid list",
    "null": "None",
}


def _quoted(values: tuple[Any, ...]) -> str:
    return either([f"'{v}'" for v in values])


def _wording(error: FieldError) -> str:
    if isinstance(error, Missing):
        return "Field required"
    if isinstance(error, WrongKind):
        return "Input should be " + _kinds(error.expected)
    if isinstance(error, UnknownTag) and error.field == "type":
        listed = ", ".join(f"'{v}'" for v in error.allowed)
        tag = shorten(str(error.value))
        return f"Input tag '{tag}' found using 'type' does not match any of the expected tags: {listed}"
    if isinstance(error, NotOneOf):
        return "Input should be " + _quoted(error.allowed)
    if isinstance(error, OutOfBounds):
        if error.too_low:
            return f"Input should be greater than or equal to {number_text(error.lo or 0)}"
        return f"Input should be less than or equal to {number_text(error.hi or 0)}"
    if isinstance(error, WrongLength):
        return _length(error)
    if isinstance(error, NoMatch):
        return f"String should match pattern '{error.pattern}'"
    return str(error)


def _kinds(expected: tuple[str, ...]) -> str:
    kinds = [k for k in expected if k != "null"] or ["null"]  # pydantic: optional is implied
    if set(kinds) == {"string", "array"}:  # every such union in this API is content
        return "a valid string or a list of content blocks"
    return either([_VALID.get(k, k) for k in kinds])


def _length(error: WrongLength) -> str:
    noun = "String" if error.what == "characters" else "List"
    unit = "character" if error.what == "characters" else "item"
    limit = error.lo if error.too_short else error.hi
    plural = "" if limit == 1 else "s"
    side = "at least" if error.too_short else "at most"
    return f"{noun} should have {side} {limit} {unit}{plural} after validation, not {error.count}"
