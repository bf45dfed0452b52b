"""The OpenAI adapter: request tables, chunk streams and bodies checked against the real SDK types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from trio_lingma import errors
from trio_lingma.protocol.conversation import Image, Message, ToolCall, ToolSpec
from trio_lingma.protocol.events import (
    ErrorKind,
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
from trio_lingma.protocol.openai import (
    ChunkStream,
    build_completion,
    error_body,
    models_list,
    new_completion_id,
    parse_chat_request,
)
from trio_lingma.protocol.sse import encode_event

USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "qwen", "messages": [USER], **fields}


# --- valid requests -------------------------------------------------------------------------


def test_minimal_request() -> None:
    req = parse_chat_request(body())
    assert req.model == "qwen"
    assert req.messages == (Message(role="user", text="hi"),)
    assert (req.system, req.stream, req.max_tokens, req.stop, req.thinking) == ("", False, None, (), False)


def test_unknown_and_tolerated_fields_are_ignored() -> None:
    extra = {"user": "u1", "seed": 7, "logprobs": False, "metadata": {"a": "b"}, "frequency_penalty": 0}
    assert parse_chat_request(body(**extra)) == parse_chat_request(body())


def test_system_and_developer_at_start_merge_later_ones_stay() -> None:
    req = parse_chat_request(
        body(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                USER,
                {"role": "assistant", "content": "salut"},
                {"role": "developer", "content": "Now English."},
                {"role": "user", "content": "again"},
            ]
        )
    )
    assert req.system == "Be brief.\n\nUse French."
    assert [(m.role, m.text) for m in req.messages] == [
        ("user", "hi"),
        ("assistant", "salut"),
        ("system", "Now English."),
        ("user", "again"),
    ]


def test_content_parts() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "input_text", "text": "closely"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    (msg,) = parse_chat_request(body(messages=[{"role": "user", "content": content}])).messages
    assert msg.text == "look\nclosely"
    assert msg.images == (Image(media_type="image/png", data="iVBORw0K"), Image(url="https://example.com/cat.jpg"))


def test_tool_round_trip_history() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    req = parse_chat_request(
        body(
            messages=[
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            tool_choice="auto",
            parallel_tool_calls=False,
        )
    )
    assert req.messages[1] == Message(
        role="assistant", tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),)
    )
    assert req.messages[2] == Message(role="tool", text="sunny", tool_call_id="call_1")
    assert req.tools == (ToolSpec(name="get_weather", parameters={"type": "object"}),)
    assert req.tool_choice == "auto"


def test_named_tool_choice_is_normalised() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "does f"}}]
    req = parse_chat_request(body(tools=tools, tool_choice={"type": "function", "function": {"name": "f"}}))
    assert req.tool_choice == {"name": "f"}
    assert req.tools == (ToolSpec(name="f", description="does f"),)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (None, ()),
        ("END", ("END",)),
        (["a", "b"], ("a", "b")),
        (["a", "a", ""], ("a",)),
        ([], ()),
        ("", ()),
    ],
)
def test_stop_normalisation(stop: Any, expected: tuple[str, ...]) -> None:
    assert parse_chat_request(body(stop=stop)).stop == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 10}, 10),
        ({"max_completion_tokens": 20}, 20),
        ({"max_tokens": 10, "max_completion_tokens": 20}, 20),
        ({"max_tokens": None}, None),
    ],
)
def test_max_tokens(fields: dict[str, Any], expected: int | None) -> None:
    assert parse_chat_request(body(**fields)).max_tokens == expected


@pytest.mark.parametrize(
    ("fields", "stream", "include_usage"),
    [
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
        ({"stream": False, "stream_options": {"include_usage": True}}, False, False),
        ({"stream": None}, False, False),
    ],
)
def test_stream_flags(fields: dict[str, Any], stream: bool, include_usage: bool) -> None:
    req = parse_chat_request(body(**fields))
    assert (req.stream, req.include_usage) == (stream, include_usage)


@pytest.mark.parametrize(
    ("effort", "thinking"), [(None, False), ("none", False), ("minimal", False), ("low", True), ("high", True)]
)
def test_reasoning_effort(effort: str | None, thinking: bool) -> None:
    assert parse_chat_request(body(reasoning_effort=effort)).thinking is thinking


def test_sampling_parameters() -> None:
    req = parse_chat_request(body(temperature=0, top_p=1, n=1))
    assert (req.temperature, req.top_p) == (0.0, 1.0)


# --- invalid requests -----------------------------------------------------------------------

INVALID = [
    ([1, 2], None, "request body must be a JSON object"),
    ("hello", None, "request body must be a JSON object"),
    ({"messages": [USER]}, "model", "model: required field is missing"),
    ({"model": 3, "messages": [USER]}, "model", "model: must be a string (got an integer)"),
    ({"model": "", "messages": [USER]}, "model", "model: must not be empty"),
    ({"model": "m"}, "messages", "messages: required field is missing"),
    (body(messages=[]), "messages", "messages: must not be empty"),
    (body(messages="hi"), "messages", "messages: must be an array (got a string)"),
    (body(messages=["hi"]), "messages[0]", "messages[0]: must be an object (got a string)"),
    (
        body(messages=[USER, USER, {"role": "bot", "content": "x"}]),
        "messages[2].role",
        "messages[2].role: must be one of system, developer, user, assistant, tool (got 'bot')",
    ),
    (body(messages=[{"content": "x"}]), "messages[0].role", "messages[0].role: required field is missing"),
    (
        body(messages=[{"role": "user", "content": 5}]),
        "messages[0].content",
        "messages[0].content: must be a string, an array or null (got an integer)",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
        "messages[0].content[0].type",
        "messages[0].content[0].type: must be one of text, input_text, refusal, image_url (got 'input_audio')",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
        "messages[0].content[0].text: required field is missing",
    ),
    (
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]),
        "messages[0].content[0].image_url.url",
        "messages[0].content[0].image_url.url: must be an http(s) URL or a data:image/<type>;base64,<data> URL",
    ),
    (
        body(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}, USER]),
        "messages[0].content",
        "messages[0].content: system messages may only contain text parts",
    ),
    (
        body(messages=[USER, {"role": "assistant", "content": "ok"}]),
        "messages[1].role",
        "messages[1].role: the last message must be a user message or a tool result (got assistant)",
    ),
    (
        body(messages=[{"role": "system", "content": "only system"}]),
        "messages[0].role",
        "messages[0].role: the last message must be a user message or a tool result (got system)",
    ),
    (
        body(messages=[{"role": "tool", "content": "x"}]),
        "messages[0].tool_call_id",
        "messages[0].tool_call_id: required for a message with role tool",
    ),
    (
        body(messages=[USER, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}, USER]),
        "messages[1].tool_calls[0].function",
        "messages[1].tool_calls[0].function: required field is missing",
    ),
    (body(n=2), "n", "n: the gateway returns exactly one choice per request; n must be 1 (got 2)"),
    (body(n=0), "n", "n: must be at least 1 (got 0)"),
    (body(max_tokens=0), "max_tokens", "max_tokens: must be at least 1 (got 0)"),
    (body(max_tokens=1.5), "max_tokens", "max_tokens: must be an integer or null (got a number)"),
    (body(max_completion_tokens=-1), "max_completion_tokens", "max_completion_tokens: must be at least 1 (got -1)"),
    (body(temperature=2.5), "temperature", "temperature: must be between 0 and 2 (got 2.5)"),
    (body(temperature="hot"), "temperature", "temperature: must be a number or null (got a string)"),
    (body(top_p=-0.1), "top_p", "top_p: must be between 0 and 1 (got -0.1)"),
    (body(stop=["a", "b", "c", "d", "e"]), "stop", "stop: must have at most 4 items"),
    (body(stop=[1]), "stop[0]", "stop[0]: must be a string (got an integer)"),
    (body(stop=7), "stop", "stop: must be a string, an array or null (got an integer)"),
    (body(stream="yes"), "stream", "stream: must be a boolean or null (got a string)"),
    (body(tools=[{"type": "function"}]), "tools[0].function", "tools[0].function: required field is missing"),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
        "tools[0].function.parameters",
        "tools[0].function.parameters: must be an object or null (got an array)",
    ),
    (body(tool_choice="sometimes"), "tool_choice", "tool_choice: must be one of none, auto, required"),
    (body(tool_choice="required"), "tool_choice", "tool_choice: requires tools to be specified"),
    (
        body(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": {"name": "g"}},
        ),
        "tool_choice.function.name",
        "tool_choice.function.name: no tool named 'g' in tools",
    ),
]


@pytest.mark.parametrize(("request_body", "param", "message"), INVALID)
def test_invalid_requests_name_the_field(request_body: Any, param: str | None, message: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        parse_chat_request(request_body)
    assert info.value.param == param
    assert info.value.message.startswith(message)
    assert info.value.status == 400


def test_several_errors_report_the_first_and_count_the_rest() -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        parse_chat_request({"model": 1, "messages": [], "temperature": 9})
    assert info.value.param == "model"
    assert info.value.message == "model: must be a string (got an integer) (and 2 more errors)"


# --- streaming ------------------------------------------------------------------------------


def stream_all(events: list[Event], *, include_usage: bool = False) -> tuple[ChunkStream, list[dict[str, Any]]]:
    stream = ChunkStream(completion_id="chatcmpl-x", model="qwen", created=1700000000, include_usage=include_usage)
    chunks = [stream.first()]
    for event in events:
        chunks += stream.feed(event)
    return stream, chunks


def deltas(chunks: list[dict[str, Any]]) -> list[Any]:
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) if c["choices"] else c["usage"] for c in chunks]


def test_text_stream_with_usage() -> None:
    events: list[Event] = [
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        Usage(input_tokens=5, output_tokens=2),
        Finish(reason=FinishReason.STOP),
    ]
    stream, chunks = stream_all(events, include_usage=True)
    assert deltas(chunks) == [
        ({"role": "assistant", "content": ""}, None),
        ({"content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({}, "stop"),
        {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    ]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert {c["id"] for c in chunks} == {"chatcmpl-x"}
    assert stream.succeeded and stream.done
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


def test_without_include_usage_there_is_no_usage_key() -> None:
    _, chunks = stream_all([TextDelta(text="a"), Usage(input_tokens=1, output_tokens=1), Finish()])
    assert len(chunks) == 3
    assert all("usage" not in c for c in chunks)


def test_thinking_and_empty_deltas() -> None:
    _, chunks = stream_all([ThinkingDelta(text="hmm"), TextDelta(text=""), TextDelta(text="ok"), Finish()])
    assert deltas(chunks)[1:] == [({"reasoning_content": "hmm"}, None), ({"content": "ok"}, None), ({}, "stop")]


def test_tool_calls_keep_stable_indices() -> None:
    events: list[Event] = [
        TextDelta(text="Let me check."),
        ToolCallStart(id="call_a", name="weather", executed=False),
        ToolCallArgsDelta(id="call_a", json='{"city":'),
        ToolCallStart(id="call_b", name="time", executed=False),
        ToolCallArgsDelta(id="call_a", json='"Paris"}'),
        ToolCallArgsDelta(id="call_b", json="{}"),
        ToolCallResult(id="call_a", content="ignored for now"),
        Usage(input_tokens=10, output_tokens=8),
        Finish(reason=FinishReason.TOOL_USE),
    ]
    _, chunks = stream_all(events, include_usage=True)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert calls == [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": ""}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
        {"index": 1, "function": {"arguments": "{}"}},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.STOP_SEQUENCE, "stop"),
        (FinishReason.TOOL_USE, "tool_calls"),
        (FinishReason.CANCELLED, "stop"),
    ],
)
def test_finish_reasons(reason: FinishReason, wire: str) -> None:
    _, chunks = stream_all([Finish(reason=reason)])
    assert chunks[-1]["choices"][0]["finish_reason"] == wire
    ChatCompletionChunk.model_validate(chunks[-1])


def test_stream_error_becomes_an_error_chunk_and_ends_the_stream() -> None:
    events: list[Event] = [
        TextDelta(text="par"),
        StreamError(kind=ErrorKind.UPSTREAM_CLOSED, message="Lingma closed the connection"),
        TextDelta(text="late"),
        Finish(),
    ]
    stream, chunks = stream_all(events, include_usage=True)
    assert chunks[-1] == {
        "error": {
            "message": "Lingma closed the connection",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_closed",
        }
    }
    assert len(chunks) == 3
    assert stream.done and not stream.succeeded


def test_new_stream_is_neither_done_nor_succeeded() -> None:
    stream = ChunkStream(completion_id="c", model="m", created=0, include_usage=False)
    assert not stream.done and not stream.succeeded
    assert "outcome=None" in repr(stream)


# --- non-streaming --------------------------------------------------------------------------


def complete(events: list[Event]) -> dict[str, Any]:
    return build_completion(events, completion_id="chatcmpl-y", model="qwen", created=1700000000)


def test_completion_with_thinking_and_usage() -> None:
    result = complete(
        [
            ThinkingDelta(text="Think"),
            ThinkingDelta(text="ing."),
            TextDelta(text="Answer"),
            TextDelta(text="!"),
            Usage(input_tokens=12, output_tokens=30),
            Finish(reason=FinishReason.LENGTH),
        ]
    )
    assert result["object"] == "chat.completion"
    assert result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Answer!", "reasoning_content": "Thinking."},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert result["usage"] == {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    parsed = ChatCompletion.model_validate(result)
    assert parsed.choices[0].message.content == "Answer!"


def test_completion_with_tool_calls_has_null_content() -> None:
    result = complete(
        [
            ToolCallStart(id="call_1", name="f", executed=False),
            ToolCallArgsDelta(id="call_1", json='{"x":'),
            ToolCallArgsDelta(id="call_1", json="1}"),
            ToolCallStart(id="call_2", name="g", executed=False),
            Usage(input_tokens=1, output_tokens=2),
            Finish(reason=FinishReason.TOOL_USE),
        ]
    )
    message = result["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    parsed = ChatCompletion.model_validate(result)
    assert json.loads(parsed.choices[0].message.tool_calls[0].function.arguments) == {"x": 1}  # type: ignore[index,union-attr]


def test_empty_completion_has_empty_string_content() -> None:
    result = complete([Usage(input_tokens=1, output_tokens=0), Finish()])
    assert result["choices"][0]["message"] == {"role": "assistant", "content": ""}
    ChatCompletion.model_validate(result)


@pytest.mark.parametrize(
    ("kind", "exc_type"),
    [
        (ErrorKind.UPSTREAM_ERROR, errors.UpstreamFailed),
        (ErrorKind.UPSTREAM_CLOSED, errors.UpstreamClosed),
        (ErrorKind.UPSTREAM_TIMEOUT, errors.UpstreamTimeout),
        (ErrorKind.OVERLOADED, errors.Overloaded),
        (ErrorKind.INTERNAL, errors.InternalError),
    ],
)
def test_completion_stream_error_raises(kind: ErrorKind, exc_type: type[errors.GatewayError]) -> None:
    with pytest.raises(exc_type, match="boom"):
        complete([TextDelta(text="x"), StreamError(kind=kind, message="boom")])


def test_completion_without_finish_is_an_internal_error() -> None:
    with pytest.raises(errors.InternalError):
        complete([TextDelta(text="x")])


# --- errors, models, ids ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "code"),
    [
        (errors.InvalidRequest("bad", param="messages[0].role"), 400, "invalid_request_error", "invalid_request"),
        (errors.AuthenticationFailed("no key"), 401, "authentication_error", "invalid_api_key"),
        (errors.PermissionDenied("no"), 403, "permission_error", "permission_denied"),
        (errors.ModelNotFound("no such model"), 404, "invalid_request_error", "model_not_found"),
        (errors.RequestTooLarge("big"), 413, "invalid_request_error", "request_too_large"),
        (errors.QueueFull("busy", retry_after=1), 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.InternalError("bug"), 500, "server_error", "internal_error"),
        (errors.UpstreamFailed("lingma said no"), 502, "upstream_error", "upstream_error"),
        (errors.UpstreamClosed("gone"), 502, "upstream_error", "upstream_closed"),
        (errors.Overloaded("full"), 503, "service_unavailable_error", "overloaded"),
        (errors.QueueTimeout("waited"), 503, "service_unavailable_error", "queue_timeout"),
        (errors.UpstreamUnavailable("none ready"), 503, "service_unavailable_error", "upstream_unavailable"),
        (errors.UpstreamTimeout("slow"), 504, "upstream_error", "upstream_timeout"),
    ],
)
def test_error_body_shapes(exc: errors.GatewayError, status: int, error_type: str, code: str) -> None:
    assert exc.status == status
    assert error_body(exc) == {"error": {"message": exc.message, "type": error_type, "param": exc.param, "code": code}}


def test_error_body_for_parse_failure_carries_param() -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        parse_chat_request(body(temperature=5))
    assert error_body(info.value)["error"]["param"] == "temperature"


def test_models_list() -> None:
    result = models_list([("qwen3-coder", "Qwen3 Coder"), ("auto", "Auto")], created=1700000000)
    assert result == {
        "object": "list",
        "data": [
            {"id": "qwen3-coder", "object": "model", "created": 1700000000, "owned_by": "lingma", "display_name": "Qwen3 Coder"},
            {"id": "auto", "object": "model", "created": 1700000000, "owned_by": "lingma", "display_name": "Auto"},
        ],
    }
    for item in result["data"]:
        Model.model_validate(item)


def test_ids_are_fresh_and_prefixed() -> None:
    a, b = new_completion_id(), new_completion_id()
    assert a.startswith("chatcmpl-") and a != b


# --- nothing crashes ----------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot"])
_PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "input_text", "image_url", "refusal", "file"])},
    optional={
        "text": st.text(max_size=5) | _JSON,
        "image_url": st.fixed_dictionaries({"url": st.sampled_from(["https://x", "data:image/png;base64,AA", "data:,"])})
        | _JSON,
    },
)
_MESSAGE = st.fixed_dictionaries(
    {"role": _ROLES},
    optional={
        "content": st.none() | st.text(max_size=5) | st.lists(_PART, max_size=3) | _JSON,
        "tool_call_id": st.text(max_size=3) | _JSON,
        "tool_calls": st.lists(_JSON, max_size=2),
    },
)
_BODY = st.fixed_dictionaries(
    {"model": st.just("qwen") | _JSON, "messages": st.lists(_MESSAGE, max_size=4) | _JSON},
    optional={
        name: _JSON | st.integers(-2, 6)
        for name in ["stream", "max_tokens", "temperature", "top_p", "n", "stop", "tools", "tool_choice"]
    },
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.one_of(_JSON, _BODY))
def test_any_json_parses_or_fails_with_invalid_request(value: Any) -> None:
    try:
        parse_chat_request(value)
    except errors.InvalidRequest as exc:
        assert exc.message
        assert exc.param is None or exc.message.startswith(exc.param + ": ")


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(st.characters(exclude_categories=["Cs"])), max_size=5),
       include_usage=st.booleans())
def test_pre_rendered_text_frames_equal_the_encoded_chunks(texts: list[str], include_usage: bool) -> None:
    def stream() -> ChunkStream:
        return ChunkStream(completion_id="chatcmpl-x", model="m\n\"q\"", created=7, include_usage=include_usage)

    fast, slow = stream(), stream()
    events = [*(TextDelta(text=t) for t in texts), Usage(input_tokens=1, output_tokens=2),
              Finish(reason=FinishReason.STOP), TextDelta(text="after the end")]
    for event in events:
        assert fast.frames(event) == b"".join(encode_event(c) for c in slow.feed(event))
