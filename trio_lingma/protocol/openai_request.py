"""OpenAI Chat Completions requests -> the protocol-neutral :class:`ChatRequest` (sans-IO).

A ``POST /v1/chat/completions`` body is structured by the one strict converter (:mod:`.convert`)
into the frozen wire models below, which tolerate unknown fields as OpenAI does, then translated
into the protocol-neutral :class:`~.conversation.ChatRequest`. Every mistake becomes
:class:`~trio_lingma.errors.InvalidRequest` whose ``param`` is the OpenAI-style field path
(``messages[2].role``), as OpenAI's own 400s carry. Re-exported by :mod:`.openai`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import attrs

from ..errors import InvalidRequest, shorten
from .conversation import ChatRequest, Image, Message, ToolCall, ToolChoice, ToolSpec
from .convert import Bounds, Length, structure
from .response_format import ChatResponseFormat, chat_response_format

__all__ = ["WireChatRequest", "parse_chat_request", "parse_image_url"]

# --- wire models (request) --------------------------------------------------------------

WireRole = Literal["system", "developer", "user", "assistant", "tool"]


@attrs.frozen(kw_only=True)
class TextPart:
    type: Literal["text", "input_text"]
    text: str


@attrs.frozen(kw_only=True)
class RefusalPart:
    """An assistant refusal echoed back in history; treated as its text."""

    type: Literal["refusal"]
    refusal: str


@attrs.frozen(kw_only=True)
class ImageUrl:
    url: str
    detail: str | None = None


@attrs.frozen(kw_only=True)
class ImagePart:
    type: Literal["image_url"]
    image_url: ImageUrl


Part = TextPart | RefusalPart | ImagePart


@attrs.frozen(kw_only=True)
class FunctionCall:
    name: str
    arguments: str = ""


@attrs.frozen(kw_only=True)
class WireToolCall:
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


@attrs.frozen(kw_only=True)
class WireMessage:
    role: WireRole
    content: str | tuple[Part, ...] | None = None
    name: str | None = None
    tool_calls: tuple[WireToolCall, ...] | None = None
    tool_call_id: str | None = None


@attrs.frozen(kw_only=True)
class FunctionDef:
    name: Annotated[str, Length(1, 64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class WireTool:
    type: Literal["function"]
    function: FunctionDef


@attrs.frozen(kw_only=True)
class NamedFunction:
    name: str


@attrs.frozen(kw_only=True)
class NamedToolChoice:
    type: Literal["function"]
    function: NamedFunction


@attrs.frozen(kw_only=True)
class StreamOptions:
    include_usage: bool | None = None


PositiveInt = Annotated[int, Bounds(1)]


@attrs.frozen(kw_only=True)
class WireChatRequest:
    """The fields of a chat completions body the gateway reads; all others are ignored."""

    model: Annotated[str, Length(1)]
    messages: Annotated[tuple[WireMessage, ...], Length(1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    stop: str | Annotated[tuple[str, ...], Length(0, 4)] | None = None
    temperature: Annotated[float, Bounds(0, 2)] | None = None
    top_p: Annotated[float, Bounds(0, 1)] | None = None
    n: PositiveInt | None = None
    tools: tuple[WireTool, ...] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    response_format: ChatResponseFormat | None = None


# --- request translation ----------------------------------------------------------------

_NO_THINKING = frozenset({"none", "minimal"})


def parse_chat_request(body: object) -> ChatRequest:
    """Validate an OpenAI chat completions body and translate it; raises InvalidRequest."""
    wire = structure(body, WireChatRequest)
    _check_request(wire)
    system, messages = _split_system(wire.messages)
    tools = tuple(_tool_spec(t) for t in wire.tools or ())
    return ChatRequest(
        model=wire.model,
        messages=messages,
        system=system,
        stream=bool(wire.stream),
        max_tokens=wire.max_completion_tokens or wire.max_tokens,
        stop=_normalise_stop(wire.stop),
        temperature=wire.temperature,
        top_p=wire.top_p,
        thinking=wire.reasoning_effort is not None and wire.reasoning_effort not in _NO_THINKING,
        tools=tools,
        tool_choice=_tool_choice(wire.tool_choice, tools),
        parallel_tool_calls=wire.parallel_tool_calls is not False,
        include_usage=bool(wire.stream and wire.stream_options and wire.stream_options.include_usage),
        response_format=chat_response_format(wire.response_format),
    )


def _check_request(wire: WireChatRequest) -> None:
    if wire.n is not None and wire.n != 1:
        raise InvalidRequest(
            f"n: the gateway returns exactly one choice per request; n must be 1 (got {wire.n})",
            param="n",
        )
    last = len(wire.messages) - 1
    if wire.messages[last].role not in ("user", "tool"):
        raise InvalidRequest(
            f"messages[{last}].role: the last message must be a user message or a tool result "
            f"(got {wire.messages[last].role}); the gateway cannot continue an assistant turn",
            param=f"messages[{last}].role",
        )


def _normalise_stop(stop: str | tuple[str, ...] | None) -> tuple[str, ...]:
    # An empty stop string would match everywhere; clients sending "" mean "no stop".
    strings = (stop,) if isinstance(stop, str) else stop or ()
    return tuple(dict.fromkeys(s for s in strings if s))


def _split_system(wire: tuple[WireMessage, ...]) -> tuple[str, tuple[Message, ...]]:
    """Leading system/developer messages become ``ChatRequest.system``; later ones stay."""
    lead = 0
    while wire[lead].role in ("system", "developer"):
        lead += 1  # cannot run off the end: the last message is user or tool
    system = "\n\n".join(_system_text(m, i) for i, m in enumerate(wire[:lead]))
    return system, tuple(_message(m, i) for i, m in enumerate(wire) if i >= lead)


def _message(msg: WireMessage, i: int) -> Message:
    return _BY_ROLE[msg.role](msg, i)


def _system_message(msg: WireMessage, i: int) -> Message:
    return Message(role="system", text=_system_text(msg, i))


def _system_text(msg: WireMessage, i: int) -> str:
    text, images = _content(msg, i)
    if images:
        raise _no_images(msg, i)
    return text


def _user_message(msg: WireMessage, i: int) -> Message:
    text, images = _content(msg, i)
    return Message(role="user", text=text, images=images)


def _assistant_message(msg: WireMessage, i: int) -> Message:
    text, images = _content(msg, i)
    if images:
        raise _no_images(msg, i)
    calls = tuple(_tool_call(c) for c in msg.tool_calls or ())
    return Message(role="assistant", text=text, tool_calls=calls)


def _tool_message(msg: WireMessage, i: int) -> Message:
    if not msg.tool_call_id:
        raise InvalidRequest(
            f"messages[{i}].tool_call_id: required for a message with role tool",
            param=f"messages[{i}].tool_call_id",
        )
    text, images = _content(msg, i)
    return Message(role="tool", text=text, images=images, tool_call_id=msg.tool_call_id)


_BY_ROLE: dict[str, Callable[[WireMessage, int], Message]] = {
    "system": _system_message,
    "developer": _system_message,
    "user": _user_message,
    "assistant": _assistant_message,
    "tool": _tool_message,
}


def _no_images(msg: WireMessage, i: int) -> InvalidRequest:
    return InvalidRequest(
        f"messages[{i}].content: {msg.role} messages may only contain text parts",
        param=f"messages[{i}].content",
    )


def _content(msg: WireMessage, i: int) -> tuple[str, tuple[Image, ...]]:
    """The text (parts joined by newlines) and images of a message's content."""
    if msg.content is None or isinstance(msg.content, str):
        return msg.content or "", ()
    texts: list[str] = []
    images: list[Image] = []
    for j, part in enumerate(msg.content):
        if isinstance(part, ImagePart):
            images.append(parse_image_url(part.image_url.url, f"messages[{i}].content[{j}].image_url.url"))
        else:
            texts.append(part.text if isinstance(part, TextPart) else part.refusal)
    return "\n".join(texts), tuple(images)


def parse_image_url(url: str, param: str) -> Image:
    """A ``data:image/...;base64,`` URL becomes inline data; an http(s) URL stays a URL."""
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    header, comma, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if not (header.startswith("data:image/") and encoding == "base64" and comma and data):
        raise InvalidRequest(
            f"{param}: must be an http(s) URL or a data:image/<type>;base64,<data> URL",
            param=param,
        )
    return Image(media_type=media_type, data=data)


def _tool_call(call: WireToolCall) -> ToolCall:
    return ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")


def _tool_spec(tool: WireTool) -> ToolSpec:
    fn = tool.function
    return ToolSpec(name=fn.name, description=fn.description or "", parameters=fn.parameters or {})


def _tool_choice(choice: Literal["none", "auto", "required"] | NamedToolChoice | None,
                 tools: tuple[ToolSpec, ...]) -> ToolChoice:
    """Neutral form: ``None``, ``"auto"``, ``"none"``, ``"required"`` or ``{"name": ...}``."""
    if choice is None or choice in ("auto", "none"):
        return choice
    if not tools:
        raise InvalidRequest("tool_choice: requires tools to be specified", param="tool_choice")
    if isinstance(choice, str):
        return choice
    name = choice.function.name
    if name not in {t.name for t in tools}:
        param = "tool_choice.function.name"
        raise InvalidRequest(f"{param}: no tool named {shorten(name)!r} in tools", param=param)
    return {"name": name}
