"""Anthropic Messages API requests -> the protocol-neutral :class:`ChatRequest` (sans-IO).

Theory of operation
-------------------
A body is structured by the one strict converter into the wire models of
:mod:`.anthropic_wire` (which tolerate every field the gateway does not read, as the real API
tolerates what newer clients send), then translated here. Every mistake, the converter's or
this module's own checks, is an :class:`InvalidRequest` worded by that module's
:func:`~.anthropic_wire.explain_anthropic`: the dotted path Anthropic reports and pydantic's
words (``max_tokens: Field required``), ``param`` the path.

Conversation mapping: a user message's ``tool_result`` blocks become ``Message(role="tool")``
entries, in order, followed by one user message with the rest of its text and images; an
assistant's ``tool_use`` blocks become ``Message.tool_calls`` (arguments: compact JSON of
``input``). A ``role: "system"`` message (Claude Code sends them anywhere: environment, agent
and skill listings) stays where it is as ``Message(role="system")``, as OpenAI's late system
messages do; one with ``clear_at: "next_user_message"`` is left out once a later user message
exists, as the API documents. Thinking, server-tool and MCP blocks of earlier turns are
accepted and not sent upstream: Lingma cannot verify or use them; a ``compaction`` block's
summary is kept as assistant text. A PDF or file document (Claude Code's Read of a PDF returns
one) becomes a placeholder line, as images do.

System: text blocks joined by a blank line. A block starting ``x-anthropic-billing-header:``
(Claude Code sends one first) is dropped: it is billing metadata for Anthropic, not an
instruction, and it changes with every Claude Code version, which would defeat prefix-based
session reuse and make the model read noise.

Tools: Anthropic-defined and server tools (a ``type`` other than ``custom``) are accepted and
dropped. A tool with ``defer_loading: true`` is offered only once tool search named it (a
``tool_reference`` block in a tool result) or a system message's ``tool_addition`` did; a
``tool_removal`` withdraws a tool from then on; a tool ``tool_choice`` names is offered. The
flattened question offers the tool set in effect at its end. ``tool_choice`` naming a server
tool becomes ``auto``: nothing here can run it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .anthropic_wire import (
    AssistantMessage,
    Base64ImageSource,
    BinarySource,
    ChoiceAny,
    ChoiceAuto,
    ChoiceNone,
    ChoiceTool,
    CompactionBlock,
    CountTokensRequest,
    CustomTool,
    DocumentBlock,
    ImageBlock,
    MessagesRequest,
    OtherTool,
    ResultPart,
    SearchResultBlock,
    SystemMessage,
    TextBlock,
    TextSource,
    ThinkingEnabled,
    ToolChangeBlock,
    ToolChoice,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    WireMessage,
    explain_anthropic,
    fail,
)
from .conversation import ChatRequest, Image, Message, ResponseFormat, ToolCall, ToolSpec
from .conversation import ToolChoice as NeutralChoice
from .convert import structure
from .field_errors import NotOneOf, Path
from .jsonutil import compact_json
from .structured import schema_error

__all__ = ["BILLING_HEADER_PREFIX", "parse_count_tokens_request", "parse_messages_request"]

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"

_Part = str | Image | ToolCall | Message | None


def parse_messages_request(body: object) -> ChatRequest:
    """Validate a ``POST /v1/messages`` body; raise :class:`InvalidRequest` naming the path."""
    wire = structure(body, MessagesRequest, explain=explain_anthropic)
    if isinstance(wire.thinking, ThinkingEnabled) and wire.thinking.budget_tokens >= wire.max_tokens:
        path = ("thinking", "budget_tokens")
        raise fail(path, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return _translate(wire, max_tokens=wire.max_tokens)


def parse_count_tokens_request(body: object) -> ChatRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body (same schema, no ``max_tokens``)."""
    return _translate(structure(body, CountTokensRequest, explain=explain_anthropic), max_tokens=None)


def _translate(wire: CountTokensRequest, *, max_tokens: int | None) -> ChatRequest:
    if not wire.messages:
        raise fail(("messages",), "at least one message is required")
    choice = wire.tool_choice
    forced = [(True, choice.name)] if isinstance(choice, ChoiceTool) else []  # offered even if deferred
    tools = _tools(wire.tools or (), _tool_changes(wire.messages) + forced)
    return ChatRequest(
        model=wire.model,
        messages=_conversation(wire.messages),
        system=_system(wire.system),
        stream=bool(wire.stream),
        max_tokens=max_tokens,
        stop=tuple(wire.stop_sequences or ()),
        temperature=wire.temperature,
        top_p=wire.top_p,
        thinking=wire.thinking is not None and wire.thinking.type != "disabled",
        tools=tools,
        tool_choice=_tool_choice(choice, wire.tools or ()),
        parallel_tool_calls=not (isinstance(choice, ChoiceAuto | ChoiceAny | ChoiceTool)
                                 and choice.disable_parallel_tool_use),
        tool_id_prefix="toolu_",
        include_usage=True,  # Anthropic always reports usage
        response_format=_output_format(wire),
    )


def _output_format(wire: CountTokensRequest) -> ResponseFormat | None:
    """Structured outputs (``output_config.format``, or the beta's ``output_format``): the
    schema is guaranteed by the real API, so the emulation is strict (protocol/structured.py)."""
    fmt = wire.output_config.format if wire.output_config else None
    path: tuple[str, ...] = ("output_config", "format", "schema")
    if fmt is None:
        fmt, path = wire.output_format, ("output_format", "schema")
    if fmt is None:
        return None
    problem = schema_error(fmt.schema)
    if problem is not None:
        raise fail(path, f"not a valid JSON Schema: {problem}")
    return ResponseFormat(kind="json_schema", schema=fmt.schema, strict=True)


def _system(system: str | tuple[TextBlock, ...] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    texts = (block.text for block in system)
    return "\n\n".join(t for t in texts if t and not t.startswith(BILLING_HEADER_PREFIX))


# --------------------------------------------------------------------------- tools


def _tools(wire: tuple[CustomTool | OtherTool, ...], changes: list[tuple[bool, str]]) -> tuple[ToolSpec, ...]:
    offered = {t.name for t in wire if isinstance(t, CustomTool) and not t.defer_loading}
    for added, name in changes:
        (offered.add if added else offered.discard)(name)
    specs = []
    for i, tool in enumerate(wire):
        if isinstance(tool, CustomTool) and tool.name in offered:
            specs.append(_tool_spec(tool, ("tools", i)))
    return tuple(specs)


def _tool_spec(tool: CustomTool, path: Path) -> ToolSpec:
    kind = tool.input_schema.get("type")
    if kind != "object":
        raise fail((*path, "input_schema", "type"), NotOneOf(("object",), kind))
    return ToolSpec(name=tool.name, description=tool.description or "", parameters=tool.input_schema)


def _tool_changes(messages: tuple[WireMessage, ...]) -> list[tuple[bool, str]]:
    """``(added?, tool name)`` in conversation order: tool search references, additions, removals."""
    changes: list[tuple[bool, str]] = []
    for msg in messages:
        for block in () if isinstance(msg.content, str) else msg.content:
            if isinstance(block, ToolChangeBlock) and block.tool.get("type") == "tool_reference":
                changes.append((block.type == "tool_addition", str(block.tool.get("name"))))
            elif isinstance(block, ToolResultBlock) and not isinstance(block.content, str | None):
                changes += [(True, p.tool_name) for p in block.content if isinstance(p, ToolReferenceBlock)]
    return changes


def _tool_choice(choice: ToolChoice | None, tools: tuple[CustomTool | OtherTool, ...]) -> NeutralChoice:
    """Protocol-neutral: ``"auto" | "required" | "none" | {"name": <tool>}`` (None: not given).
    A server tool named by ``tool_choice`` cannot be called here: the model decides (``"auto"``)."""
    if isinstance(choice, ChoiceTool):
        server = any(isinstance(t, OtherTool) and t.name == choice.name for t in tools)
        return "auto" if server else {"name": choice.name}
    if isinstance(choice, ChoiceAuto):
        return "auto"
    if isinstance(choice, ChoiceAny):
        return "required"
    return "none" if isinstance(choice, ChoiceNone) else None


# --------------------------------------------------------------------------- messages


def _conversation(wire: tuple[WireMessage, ...]) -> tuple[Message, ...]:
    last_user = max((i for i, m in enumerate(wire) if isinstance(m, UserMessage)), default=-1)
    out: list[Message] = []
    for i, msg in enumerate(wire):
        path = ("messages", i)
        if isinstance(msg, SystemMessage):
            cleared = msg.clear_at == "next_user_message" and i < last_user
            out += [] if cleared else _system_message(msg)
        elif isinstance(msg, AssistantMessage):
            out.append(_assistant_message(msg))
        else:
            out += _user_message(msg, path)
    return tuple(out)


def _system_message(msg: SystemMessage) -> list[Message]:
    if isinstance(msg.content, str):
        text = msg.content
    else:
        text = "\n".join(b.text for b in msg.content if isinstance(b, TextBlock))
    return [Message(role="system", text=text)] if text else []


def _assistant_message(msg: AssistantMessage) -> Message:
    if isinstance(msg.content, str):
        return Message(role="assistant", text=msg.content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in msg.content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, CompactionBlock) and block.content:
            texts.append(block.content)
        elif isinstance(block, ToolUseBlock):
            calls.append(ToolCall(id=block.id, name=block.name, arguments=compact_json(block.input)))
    return Message(role="assistant", text="\n".join(texts), tool_calls=tuple(calls))


def _user_message(msg: UserMessage, path: Path) -> list[Message]:
    """Tool results first (one message each, in order), then the rest of the turn."""
    if isinstance(msg.content, str):
        return [Message(role="user", text=msg.content)]
    results: list[Message] = []
    texts: list[str] = []
    images: list[Image] = []
    for j, block in enumerate(msg.content):
        if isinstance(block, ToolResultBlock):
            results.append(_tool_result(block, (*path, "content", j)))
        elif not isinstance(block, ImageBlock):
            texts += _texts(block, (*path, "content", j))
        else:
            images.append(_image(block))
    if results and not (texts or images):
        return results
    return [*results, Message(role="user", text="\n".join(texts), images=tuple(images))]


def _tool_result(block: ToolResultBlock, path: Path) -> Message:
    text, images = _result_content(block.content, (*path, "content"))
    return Message(role="tool", tool_call_id=block.tool_use_id, text=text, images=images,
                   is_error=bool(block.is_error))


def _result_content(content: str | Iterable[ResultPart] | None, path: Path) -> tuple[str, tuple[Image, ...]]:
    """A tool result's (or a content document's) content: a string or blocks."""
    if content is None or isinstance(content, str):
        return content or "", ()
    texts: list[str] = []
    images: list[Image] = []
    for i, part in enumerate(content):
        if isinstance(part, ImageBlock):
            images.append(_image(part))
        else:
            texts += _texts(part, (*path, i))
    return "\n".join(texts), tuple(images)


def _texts(block: object, path: Path) -> list[str]:
    """The text a non-image block contributes (none for blocks Lingma cannot use)."""
    if isinstance(block, TextBlock):
        return [block.text]
    if isinstance(block, DocumentBlock):
        return [_document(block, path)]
    if isinstance(block, SearchResultBlock):
        body = "\n".join(t.text for t in block.content)
        return [f"{block.title} ({block.source}):\n{body}"]
    if isinstance(block, ToolReferenceBlock):
        return [f"[tool available: {block.tool_name}]"]
    return []


def _document(block: DocumentBlock, path: Path) -> str:
    """A document's text; a PDF or file (Lingma reads neither) is a placeholder line, not a 400:
    agent clients keep such a block in every later request, so refusing it would end the session."""
    source = block.source
    if isinstance(source, BinarySource):
        what = source.media_type or source.type
        return f"[document{': ' + block.title if block.title else ''} ({what}): not readable by this gateway]"
    if isinstance(source, TextSource):
        return source.data
    return _result_content(source.content, (*path, "source", "content"))[0]


def _image(block: ImageBlock) -> Image:
    source = block.source
    if isinstance(source, Base64ImageSource):
        return Image(media_type=source.media_type, data=source.data)
    return Image(url=source.url)
