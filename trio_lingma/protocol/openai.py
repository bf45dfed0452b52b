"""The OpenAI Chat Completions wire adapter (sans-IO), both directions.

Theory of operation
-------------------
*Requests.* A ``POST /v1/chat/completions`` body is structured by the one strict converter
(:mod:`.convert`) into the frozen wire models below, which tolerate unknown fields as OpenAI
does, then translated into the protocol-neutral :class:`~.conversation.ChatRequest`. Every
mistake becomes :class:`~trio_lingma.errors.InvalidRequest` whose ``param`` is the OpenAI-style
field path (``messages[2].role``), as OpenAI's own 400s carry.

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
from typing import Annotated, Any, Literal

import attrs

from ..errors import GatewayError, InternalError, InvalidRequest, error_from_event
from .conversation import ChatRequest, Image, Message, ToolCall, ToolChoice, ToolSpec
from .convert import Bounds, Length, structure
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

__all__ = [
    "ChunkStream",
    "WireChatRequest",
    "build_completion",
    "error_body",
    "models_list",
    "new_completion_id",
    "parse_chat_request",
]

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
            images.append(_image(part.image_url.url, f"messages[{i}].content[{j}].image_url.url"))
        else:
            texts.append(part.text if isinstance(part, TextPart) else part.refusal)
    return "\n".join(texts), tuple(images)


def _image(url: str, param: str) -> Image:
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
        raise InvalidRequest(f"{param}: no tool named {name!r} in tools", param=param)
    return {"name": name}


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

