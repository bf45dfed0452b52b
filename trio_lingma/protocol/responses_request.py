"""OpenAI Responses API requests -> the protocol-neutral :class:`ChatRequest` (sans-IO).

Theory of operation
-------------------
A ``POST /v1/responses`` body is structured by the one strict converter (:mod:`.convert`) into
the frozen wire models below, then translated. ``input`` is a string (one user message) or a
list of *items*; each item is structured by its own ``type`` (a message may omit it, as the
SDK's ``EasyInputMessage`` does), so an error names its path (``input[3].call_id``).

The items become the same neutral conversation the Chat Completions adapter builds:

* ``instructions``, then the leading ``system``/``developer`` messages -> ``ChatRequest.system``;
  later ones stay in order as system messages, as in chat completions.
* ``message`` items (``input_text``/``output_text``/``refusal`` text, ``input_image``) -> user
  or assistant messages; ``function_call`` items join the assistant message before them (one
  assistant turn = its text + its calls, the shape :func:`~.sessions.answer_key` hashes, so a
  client that resends history finds its cached upstream session);
  ``function_call_output`` -> a tool result.
* ``reasoning`` items are echoed back by clients (Codex sends them every turn): accepted and
  left out of the question, as is any item type the gateway cannot serve (``web_search_call``,
  ``item_reference``, ``compaction``...).

Only ``function`` tools can be served (client tools emulation); other tool types
(``web_search``, ``namespace``, ``custom``, ``local_shell``, MCP...) are ignored, like the
fields ``store``, ``include``, ``prompt_cache_key``, ``truncation``, ``metadata``, ``user``,
``safety_identifier``, ``service_tier`` (unknown fields are tolerated by the converter).
``previous_response_id`` is resolved by the route (the stored conversation is passed in as
``history``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import attrs

from ..errors import InvalidRequest, PreviousResponseNotFound
from .conversation import ChatRequest, Image, Message, ToolCall, ToolChoice, ToolSpec
from .convert import Bounds, Explain, Length, explain_openai, structure
from .field_errors import Path, Problem
from .openai_request import RefusalPart, parse_image_url
from .response_format import FlatTextFormat, text_format

__all__ = ["Lookup", "ResponsesRequest", "WireResponsesRequest", "items_to_messages", "parse_responses_request"]

# --- wire models ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TextPart:
    type: Literal["input_text", "output_text", "text", "summary_text"]
    text: str


@attrs.frozen(kw_only=True)
class ImagePart:
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


@attrs.frozen(kw_only=True)
class FilePart:
    """A file input: the gateway cannot read it; it is named in the question."""

    type: Literal["input_file"]
    filename: str | None = None
    file_id: str | None = None
    file_url: str | None = None


Part = TextPart | RefusalPart | ImagePart | FilePart


@attrs.frozen(kw_only=True)
class MessageItem:
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | tuple[Part, ...]


@attrs.frozen(kw_only=True)
class FunctionCallItem:
    type: Literal["function_call"]
    call_id: Annotated[str, Length(1)]
    name: Annotated[str, Length(1)]
    arguments: str = ""


@attrs.frozen(kw_only=True)
class FunctionCallOutputItem:
    type: Literal["function_call_output"]
    call_id: Annotated[str, Length(1)]
    output: str | tuple[Part, ...]


@attrs.frozen(kw_only=True)
class FunctionTool:
    type: Literal["function"]
    name: Annotated[str, Length(1, 64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@attrs.frozen(kw_only=True)
class Reasoning:
    effort: str | None = None
    summary: str | None = None


@attrs.frozen(kw_only=True)
class TextConfig:
    format: FlatTextFormat | None = None
    verbosity: str | None = None


PositiveInt = Annotated[int, Bounds(1)]


@attrs.frozen(kw_only=True)
class WireResponsesRequest:
    """The fields of a Responses body the gateway reads; all others are ignored."""

    model: Annotated[str, Length(1)]
    input: str | tuple[dict[str, Any], ...]
    instructions: str | None = None
    stream: bool | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: Annotated[float, Bounds(0, 2)] | None = None
    top_p: Annotated[float, Bounds(0, 1)] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    text: TextConfig | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    metadata: dict[str, Any] | None = None
    user: str | None = None
    # Not served: ignoring them would silently drop history or instructions (a 400 instead).
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ResponsesRequest:
    """A validated Responses request: the neutral request plus what the response echoes."""

    chat: ChatRequest
    wire: WireResponsesRequest
    #: The conversation in order, leading system messages included (what ``previous_response_id``
    #: continues from; instructions are not part of it, as in OpenAI's API).
    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...]  # the tools as given, echoed in the response object
    tool_choice: str | dict[str, Any]


Item = MessageItem | FunctionCallItem | FunctionCallOutputItem

_ITEM_TYPES: dict[str, type[Item]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
}

# --- translation ------------------------------------------------------------------------

_NO_THINKING = frozenset({"none", "minimal"})


Lookup = Callable[[str], Sequence[Message] | None]


def parse_responses_request(body: object, *, lookup: Lookup = lambda _: None) -> ResponsesRequest:
    """Validate a Responses body and translate it.

    ``lookup`` gives the conversation a stored response ended with (its input and output), which
    ``previous_response_id`` continues; an unknown id is a 400 ``previous_response_not_found``.
    """
    wire = structure(body, WireResponsesRequest)
    _refuse_unserved(wire)
    tools, raw_choice = _allowed_tools(_function_tools(wire.tools or ()), wire.tool_choice)
    messages = (*_history(wire.previous_response_id, lookup), *_messages(wire.input))
    if not messages or messages[-1].role not in ("user", "tool"):
        got = messages[-1].role if messages else "nothing"
        raise InvalidRequest(
            f"input: the last input item must be a user message or a function_call_output (got {got}); "
            "the gateway cannot continue an assistant turn", param="input")
    system, rest = _split_system(wire.instructions, messages)
    choice = _tool_choice(raw_choice, tools)
    chat = ChatRequest(
        model=wire.model, messages=rest, system=system, stream=bool(wire.stream),
        max_tokens=wire.max_output_tokens, temperature=wire.temperature, top_p=wire.top_p,
        thinking=_thinking(wire.reasoning), tools=tools, tool_choice=choice,
        parallel_tool_calls=wire.parallel_tool_calls is not False, include_usage=True,
        response_format=text_format(wire.text.format if wire.text else None),
    )
    return ResponsesRequest(chat=chat, wire=wire, messages=messages, tools=wire.tools or (),
                            tool_choice=wire.tool_choice if wire.tool_choice is not None else "auto")


_UNSERVED = {
    "conversation": "the Conversations API is not served by this gateway; send the history in `input` "
                    "or continue with `previous_response_id`",
    "prompt": "stored prompt templates are not served by this gateway; send `instructions` instead",
}


def _refuse_unserved(wire: WireResponsesRequest) -> None:
    for field, why in _UNSERVED.items():
        if getattr(wire, field) is not None:
            raise InvalidRequest(f"{field}: {why}", param=field)


def _allowed_tools(tools: tuple[ToolSpec, ...], choice: str | dict[str, Any] | None
                   ) -> tuple[tuple[ToolSpec, ...], str | dict[str, Any] | None]:
    """``tool_choice: {"type": "allowed_tools", "mode", "tools"}``: only the listed function tools
    are offered, and ``mode`` (auto or required) is the choice."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return tools, choice
    listed = choice.get("tools")
    names = {t.get("name") for t in listed if isinstance(t, dict)} if isinstance(listed, list) else set()
    mode = choice.get("mode", "auto")
    return tuple(t for t in tools if t.name in names), mode if isinstance(mode, str) else "auto"


def _history(previous: str | None, lookup: Lookup) -> Sequence[Message]:
    if previous is None:
        return ()
    found = lookup(previous)
    if found is None:
        raise PreviousResponseNotFound(f"Previous response with id {previous!r} not found.",
                                       param="previous_response_id")
    return found


def items_to_messages(items: Sequence[dict[str, Any]]) -> tuple[Message, ...]:
    """Output items of a response (as the client would send them back) as neutral messages."""
    return tuple(_messages(tuple(items)))


def _thinking(reasoning: Reasoning | None) -> bool:
    return reasoning is not None and reasoning.effort is not None and reasoning.effort not in _NO_THINKING


def _split_system(instructions: str | None, messages: tuple[Message, ...]) -> tuple[str, tuple[Message, ...]]:
    lead = 0
    while messages[lead].role == "system":
        lead += 1  # cannot run off the end: the last message is user or tool
    texts = [instructions or "", *(m.text for m in messages[:lead])]
    return "\n\n".join(t for t in texts if t), messages[lead:]


def _messages(raw: str | tuple[dict[str, Any], ...]) -> list[Message]:
    if isinstance(raw, str):
        return [Message(role="user", text=raw)]
    out: list[Message] = []
    for i, value in enumerate(raw):
        item = _item(value, i)
        if item is not None:
            _ADD[type(item)](out, item, i)
    return out


def _item(value: Mapping[str, Any], i: int) -> Item | None:
    """The item structured by its ``type`` (a message may omit it); None for other types."""
    kind = value.get("type", "message" if "role" in value else None)
    if kind is None:
        raise InvalidRequest(f"input[{i}].type: required field is missing", param=f"input[{i}].type")
    cls = _ITEM_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return None  # reasoning items echoed back, and types the gateway cannot serve
    return structure({**value, "type": kind}, cls, explain=_at("input", i))


def _at(*path: str | int) -> Explain:
    """OpenAI's wording for a value structured on its own at ``path`` inside the body."""
    where: Path = path

    def explain(found: list[Problem]) -> InvalidRequest:
        return explain_openai([Problem((*where, *p.path), p.error) for p in found])

    return explain


def _add_message(out: list[Message], item: MessageItem, i: int) -> None:
    text, images = _content(item.content, f"input[{i}].content")
    if item.role in ("system", "developer"):
        out.append(Message(role="system", text=text))
    elif item.role == "user":
        out.append(Message(role="user", text=text, images=images))
    elif out and out[-1].role == "assistant" and not out[-1].tool_calls:
        out[-1] = attrs.evolve(out[-1], text="\n".join(t for t in (out[-1].text, text) if t))
    else:
        out.append(Message(role="assistant", text=text))


def _add_call(out: list[Message], item: FunctionCallItem, i: int) -> None:
    call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments or "{}")
    if out and out[-1].role == "assistant":
        out[-1] = attrs.evolve(out[-1], tool_calls=(*out[-1].tool_calls, call))
    else:
        out.append(Message(role="assistant", tool_calls=(call,)))


def _add_output(out: list[Message], item: FunctionCallOutputItem, i: int) -> None:
    text, images = _content(item.output, f"input[{i}].output")
    out.append(Message(role="tool", text=text, images=images, tool_call_id=item.call_id))


_ADD: dict[type, Callable[[list[Message], Any, int], None]] = {
    MessageItem: _add_message,
    FunctionCallItem: _add_call,
    FunctionCallOutputItem: _add_output,
}


def _content(content: str | tuple[Part, ...], path: str) -> tuple[str, tuple[Image, ...]]:
    if isinstance(content, str):
        return content, ()
    texts: list[str] = []
    images: list[Image] = []
    for j, part in enumerate(content):
        if isinstance(part, ImagePart):
            images.append(_image(part, f"{path}[{j}]"))
        elif isinstance(part, FilePart):
            texts.append(f"[file: {part.filename or part.file_url or part.file_id or 'inline'}]")
        else:
            texts.append(part.text if isinstance(part, TextPart) else part.refusal)
    return "\n".join(texts), tuple(images)


def _image(part: ImagePart, path: str) -> Image:
    if part.image_url:
        return parse_image_url(part.image_url, f"{path}.image_url")
    if part.file_id:
        return Image(url=f"file:{part.file_id}")
    raise InvalidRequest(f"{path}.image_url: an input_image needs image_url or file_id", param=f"{path}.image_url")


def _function_tools(raw: tuple[dict[str, Any], ...]) -> tuple[ToolSpec, ...]:
    """The ``function`` tools; other tool types cannot be served here and are ignored."""
    specs = []
    for i, value in enumerate(raw):
        if value.get("type") == "function":
            tool = structure(value, FunctionTool, explain=_at("tools", i))
            specs.append(ToolSpec(name=tool.name, description=tool.description or "",
                                  parameters=tool.parameters or {}))
    return tuple(specs)


def _tool_choice(raw: str | dict[str, Any] | None, tools: tuple[ToolSpec, ...]) -> ToolChoice:
    """Neutral form; a choice of a tool type the gateway does not serve counts as ``auto``."""
    if raw is None:
        return None
    if raw in ("auto", "none"):
        return "none" if raw == "none" else "auto"
    if raw == "required":
        return "required" if tools else "auto"
    if isinstance(raw, str):
        raise InvalidRequest(f"tool_choice: must be one of none, auto, required or an object (got {raw!r})",
                             param="tool_choice")
    if raw.get("type") != "function":
        return "auto"
    name = raw.get("name")
    if not isinstance(name, str) or name not in {t.name for t in tools}:
        raise InvalidRequest(f"tool_choice.name: no function tool named {name!r} in tools", param="tool_choice.name")
    return {"name": name}
