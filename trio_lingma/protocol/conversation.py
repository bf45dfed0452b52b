"""The protocol-neutral chat request, and how a conversation becomes one Lingma question.

Theory of operation
-------------------
Lingma's ``chat/ask`` takes one ``questionText`` per turn and keeps history server-side per
``sessionId`` (lingma-protocol.md §3A "Multi-turn"). OpenAI and Anthropic clients instead send
the whole conversation with every request. So, for a fresh upstream session, the gateway
*flattens* the conversation into one question (:func:`flatten`); when the session that already
holds the earlier turns is reused, it sends only the new turn (:func:`render_new_turn`).

The flattened form (also documented in DESIGN.md) is::

    System instructions:
    <system text>

    Conversation so far:
    User: <text>

    Assistant: <text>

    Tool result (<tool_call_id>): <text>

    Current request:
    <newest user turn>

A conversation that is just one user message (and no system text) is sent as that message's
text alone, exactly what a person would type into the IDE. Images are represented by a
placeholder line (``[image: <url or media type>]``); a tool call an assistant made earlier
is rendered as ``Tool call <id>: <name>(<JSON arguments>)``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, TypedDict

import attrs

from .jsonutil import compact_json

__all__ = [
    "ChatRequest",
    "Image",
    "Message",
    "NamedToolChoice",
    "ResponseFormat",
    "Role",
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "flatten",
    "render_message",
    "render_new_turn",
    "split_new_turn",
    "tools_json",
]

Role = Literal["system", "user", "assistant", "tool"]


@attrs.frozen(kw_only=True)
class Image:
    """An image part: inline base64 ``data`` or a remote ``url``."""

    media_type: str = ""
    data: str | None = None
    url: str | None = None


@attrs.frozen(kw_only=True)
class ToolCall:
    """A tool call made by the assistant in an earlier turn (arguments as a JSON string)."""

    id: str
    name: str
    arguments: str = "{}"


@attrs.frozen(kw_only=True)
class ToolSpec:
    """A client-defined tool (function) the model may call."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Message:
    """One conversation message in protocol-neutral form."""

    role: Role
    text: str = ""
    images: tuple[Image, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False


@attrs.frozen(kw_only=True)
class ResponseFormat:
    """Structured output the client asked for (``response_format`` / Responses ``text.format``):
    ``json_object`` (any JSON object) or ``json_schema`` (valid against ``schema``)."""

    kind: Literal["json_object", "json_schema"]
    name: str = ""
    description: str = ""
    schema: dict[str, Any] | None = None
    #: The answer must validate against ``schema``: after the one re-ask, an error instead.
    strict: bool = False


class NamedToolChoice(TypedDict):
    """The one tool a reply must call."""

    name: str


#: Protocol-neutral ``tool_choice``: ``None`` when the request gave none (the model decides).
ToolChoice: TypeAlias = Literal["auto", "required", "none"] | NamedToolChoice | None


@attrs.frozen(kw_only=True)
class ChatRequest:
    """What either wire API asked for, after validation."""

    model: str
    messages: tuple[Message, ...]
    system: str = ""
    stream: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    thinking: bool = False
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = None
    #: False: only the first client tool call of an answer is kept (protocol/client_tools.py).
    parallel_tool_calls: bool = True
    #: Prefix of the ids the gateway makes for client tool calls, in the wire API's style.
    tool_id_prefix: str = "call_"
    include_usage: bool = False
    #: Structured output, emulated in the question and checked on the answer (protocol/structured.py).
    response_format: ResponseFormat | None = None


_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def render_message(msg: Message) -> str:
    """One message as a transcript entry (without the role label for user turns' body)."""
    lines = [msg.text] if msg.text else []
    lines += [f"[image: {img.url or img.media_type or 'inline'}]" for img in msg.images]
    for call in msg.tool_calls:
        lines.append(f"Tool call {call.id}: {call.name}({call.arguments})")
    body = "\n".join(lines)
    if msg.role == "tool":
        status = " (error)" if msg.is_error else ""
        return f"Tool result ({msg.tool_call_id}){status}: {body}"
    return f"{_LABELS[msg.role]}: {body}"


def split_new_turn(messages: tuple[Message, ...]) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """Split into (history, new turn): the new turn is everything after the last assistant message."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    return messages[: last + 1], messages[last + 1 :]


def render_new_turn(messages: tuple[Message, ...]) -> str:
    """The text of a turn sent into an upstream session that already holds the history."""
    if len(messages) == 1 and messages[0].role == "user":
        return _plain(messages[0])
    return "\n\n".join(render_message(m) for m in messages)


def flatten(request: ChatRequest) -> str:
    """The whole conversation as one Lingma question (fresh upstream session)."""
    history, new = split_new_turn(request.messages)
    if not request.system and not history:
        return render_new_turn(new)
    parts = []
    if request.system:
        parts.append(f"System instructions:\n{request.system}")
    if history:
        parts.append("Conversation so far:\n" + "\n\n".join(render_message(m) for m in history))
    if new:
        parts.append("Current request:\n" + render_new_turn(new))
    return "\n\n".join(parts)


def _plain(msg: Message) -> str:
    lines = [msg.text] if msg.text else []
    lines += [f"[image: {img.url or img.media_type or 'inline'}]" for img in msg.images]
    return "\n".join(lines)


def tools_json(tools: tuple[ToolSpec, ...]) -> str:
    """Canonical JSON of tool definitions (used for token counting)."""
    return compact_json([{"name": t.name, "description": t.description, "parameters": t.parameters}
                         for t in tools], sort_keys=True)
