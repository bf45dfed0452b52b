"""The sans-IO Anthropic adapter: requests in, stream events and messages out.

Payloads are checked three ways: by our own grammar checker, by the official SDK's pydantic
types (``anthropic.types``), and by folding each stream with the SDK's own accumulator and
comparing with the non-stream :func:`build_message` result.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import anthropic.types
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event  # the SDK's stream folder
from anthropic.types.shared import ErrorResponse
from hypothesis import given
from hypothesis import strategies as st

from tests.anthropic_grammar import check_stream
from trio_lingma import errors
from trio_lingma.protocol import anthropic as adapter
from trio_lingma.protocol.conversation import Image, Message, ToolCall
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
from trio_lingma.protocol.tokens import count_input_tokens

STREAM_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    return {**base, **fields}


def tool(name: str, properties: int = 3) -> dict[str, Any]:
    props = {f"p{i}": {"type": "string", "description": f"parameter {i} " * 20} for i in range(properties)}
    return {
        "name": name,
        "description": f"The {name} tool. " * 30,
        "input_schema": {"type": "object", "properties": props, "required": ["p0"]},
    }


def claude_code_body() -> dict[str, Any]:
    """Shaped like what Claude Code sends (system blocks, billing header, tools, thinking)."""
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": True,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0.14; cc_entrypoint=cli"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Use the tools below.", "cache_control": {"type": "ephemeral"}},
        ],
        "metadata": {"user_id": "user_abc_account_123_session_456"},
        "tools": [tool(f"Tool_{i}", properties=12) for i in range(30)],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "temperature": 1,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "c2ln"},
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_01A", "name": "Tool_0", "input": {"p0": "ls -la"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "Tool_1", "input": {"p0": "pwd"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a.py\nb.py"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": True,
                 "content": [{"type": "text", "text": "permission denied"}]},
                {"type": "text", "text": "Now summarise."},
            ]},
        ],
        "context_management": {"edits": []},
        "service_tier": "auto",
    }


# --------------------------------------------------------------------------- valid requests


def test_minimal_request() -> None:
    request = adapter.parse_messages_request(body())
    assert request.model == "claude-sonnet-4-5"
    assert request.max_tokens == 1024
    assert request.messages == (Message(role="user", text="Hello"),)
    assert (request.system, request.stream, request.thinking, request.tools) == ("", False, False, ())
    assert request.include_usage is True


def test_claude_code_request() -> None:
    request = adapter.parse_messages_request(claude_code_body())
    # The billing header is dropped; the other system blocks are joined by a blank line.
    assert request.system == "You are Claude Code, Anthropic's official CLI for Claude.\n\nUse the tools below."
    assert request.stream and request.thinking and request.temperature == 1.0
    assert [t.name for t in request.tools] == [f"Tool_{i}" for i in range(30)]
    assert request.tools[0].parameters["required"] == ["p0"]
    assert request.messages == (
        Message(role="user", text="<system-reminder>ctx</system-reminder>\nList the files"),
        Message(role="assistant", text="Running ls.", tool_calls=(
            ToolCall(id="toolu_01A", name="Tool_0", arguments='{"p0":"ls -la"}'),
            ToolCall(id="toolu_01B", name="Tool_1", arguments='{"p0":"pwd"}'),
        )),
        Message(role="tool", tool_call_id="toolu_01A", text="a.py\nb.py"),
        Message(role="tool", tool_call_id="toolu_01B", text="permission denied", is_error=True),
        Message(role="user", text="Now summarise."),
    )


VALID: list[tuple[str, dict[str, Any], Any]] = [
    ("string system", body(system="Be brief."), lambda r: r.system == "Be brief."),
    ("text blocks", body(messages=[{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
     lambda r: r.messages == (Message(role="user", text="a\nb"),)),
    ("image base64", body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is this?"}]}]),
     lambda r: r.messages[0].images == (Image(media_type="image/png", data=PNG),)),
    ("image url", body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]),
     lambda r: r.messages[0].images == (Image(url="https://example.com/a.png"),)),
    ("tool_result with image", body(messages=[
        {"role": "user", "content": "shoot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "cam", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AA=="}}]}]}]),
     lambda r: r.messages[-1] == Message(role="tool", tool_call_id="t",
                                         images=(Image(media_type="image/jpeg", data="AA=="),))),
    ("tool_result without content", body(messages=[
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]),
     lambda r: r.messages == (Message(role="tool", tool_call_id="t"),)),
    ("text document", body(messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}]}]),
     lambda r: r.messages[0].text == "doc"),
    ("redacted thinking dropped", body(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xx"}]},
        {"role": "user", "content": "again"}]),
     lambda r: [m.role for m in r.messages] == ["user", "assistant", "user"] and r.messages[1].text == ""),
    ("prefill", body(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure"}]),
     lambda r: r.messages[-1] == Message(role="assistant", text="Sure")),
    ("stop/temperature/top_p/top_k", body(stop_sequences=["END"], temperature=0, top_p=0.9, top_k=5),
     lambda r: (r.stop, r.temperature, r.top_p) == (("END",), 0.0, 0.9)),
    ("thinking adaptive", body(thinking={"type": "adaptive"}), lambda r: r.thinking),
    ("thinking disabled", body(thinking={"type": "disabled"}), lambda r: not r.thinking),
    ("server tool dropped", body(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                                        tool("Read")]),
     lambda r: [t.name for t in r.tools] == ["Read"]),
    ("custom tool type", body(tools=[{**tool("Read"), "type": "custom"}]), lambda r: len(r.tools) == 1),
    ("tool_choice any", body(tool_choice={"type": "any", "disable_parallel_tool_use": True}),
     lambda r: r.tool_choice == "required"),
    ("tool_choice tool", body(tool_choice={"type": "tool", "name": "Read"}),
     lambda r: r.tool_choice == {"name": "Read"}),
    ("tool_choice none", body(tool_choice={"type": "none"}), lambda r: r.tool_choice == "none"),
    ("unknown top-level fields", body(container="c", mcp_servers=[], service_tier="auto", metadata={}),
     lambda r: r.model == "claude-sonnet-4-5"),
    ("null optionals", body(system=None, temperature=None, tools=None, stream=None), lambda r: not r.stream),
]


@pytest.mark.parametrize(("name", "raw", "check"), VALID, ids=[v[0] for v in VALID])
def test_valid_requests(name: str, raw: dict[str, Any], check: Any) -> None:
    assert check(adapter.parse_messages_request(raw))


# --------------------------------------------------------------------------- invalid requests


def without(key: str) -> dict[str, Any]:
    raw = body()
    del raw[key]
    return raw


INVALID: list[tuple[object, str, str | None]] = [
    (without("max_tokens"), "max_tokens: Field required", "max_tokens"),
    (without("model"), "model: Field required", "model"),
    (without("messages"), "messages: Field required", "messages"),
    ([], "Input should be a valid dictionary", None),
    (body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1", "max_tokens"),
    (body(max_tokens="10"), "max_tokens: Input should be a valid integer", "max_tokens"),
    (body(max_tokens=True), "max_tokens: Input should be a valid integer", "max_tokens"),
    (body(messages=[]), "messages: at least one message is required", "messages"),
    (body(messages=[{"role": "tool", "content": "x"}]),
     "messages.0.role: Input should be 'user', 'assistant' or 'system'", "messages.0.role"),
    (body(messages=[{"role": "user"}]), "messages.0.content: Field required", "messages.0.content"),
    (body(messages=[{"role": "user", "content": 3}]),
     "messages.0.content: Input should be a valid string or a list of content blocks", "messages.0.content"),
    (body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "video"}]}]),
     "messages.1.content.0.type: Input tag 'video' found using 'type' does not match any of the expected "
     "tags: 'text', 'tool_use', 'compaction', 'thinking', 'redacted_thinking', 'server_tool_use', "
     "'web_search_tool_result', 'web_fetch_tool_result', 'advisor_tool_result', 'code_execution_tool_result', "
     "'bash_code_execution_tool_result', 'text_editor_code_execution_tool_result', 'tool_search_tool_result', "
     "'mcp_tool_use', 'mcp_tool_result', 'mcp_tool_listing', 'container_upload', 'fallback'",
     "messages.1.content.0.type"),
    (body(messages=[{"role": "user", "content": [{"text": "no type"}]}]),
     "messages.0.content.0.type: Field required", "messages.0.content.0.type"),
    (body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
     "messages.0.content.0.text: Field required", "messages.0.content.0.text"),
    (body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
     "messages.0.content.0.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
     "or 'image/webp'", "messages.0.content.0.source.media_type"),
    (body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "{}"}]}]),
     "messages.0.content.0.input: Input should be a valid dictionary", "messages.0.content.0.input"),
    (body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}]),
     "messages.0.content.0.is_error: Input should be a valid boolean", "messages.0.content.0.is_error"),
    (body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                  "content": [{"type": "tool_use"}]}]}]),
     "messages.0.content.0.content.0.type: Input tag 'tool_use' found using 'type' does not match any of "
     "the expected tags: 'text', 'image', 'document', 'search_result', 'tool_reference'", "messages.0.content.0.content.0.type"),
    (body(temperature=1.5), "temperature: Input should be less than or equal to 1", "temperature"),
    (body(temperature=-0.1), "temperature: Input should be greater than or equal to 0", "temperature"),
    (body(top_p="high"), "top_p: Input should be a valid number", "top_p"),
    (body(top_k=-1), "top_k: Input should be greater than or equal to 0", "top_k"),
    (body(stop_sequences=["a", 1]), "stop_sequences.1: Input should be a valid string", "stop_sequences.1"),
    (body(metadata={"user_id": 7}), "metadata.user_id: Input should be a valid string", "metadata.user_id"),
    (body(system=[{"type": "image"}]),
     "system.0.type: Input tag 'image' found using 'type' does not match any of the expected tags: 'text'",
     "system.0.type"),
    (body(thinking={"type": "enabled", "budget_tokens": 1000}),
     "thinking.budget_tokens: Input should be greater than or equal to 1024", "thinking.budget_tokens"),
    (body(thinking={"type": "enabled"}), "thinking.budget_tokens: Field required", "thinking.budget_tokens"),
    (body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}),
     "thinking.budget_tokens: `max_tokens` must be greater than `thinking.budget_tokens`",
     "thinking.budget_tokens"),
    (body(thinking={"type": "on"}),
     "thinking.type: Input tag 'on' found using 'type' does not match any of the expected tags: "
     "'enabled', 'disabled', 'adaptive', 'between_tools'", "thinking.type"),
    (body(tools=[{"name": "bad name!", "input_schema": {"type": "object"}}]),
     "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", "tools.0.name"),
    (body(tools=[{"name": "Read"}]), "tools.0.input_schema: Field required", "tools.0.input_schema"),
    (body(tools=[{"name": "Read", "input_schema": {"type": "array"}}]),
     "tools.0.input_schema.type: Input should be 'object'", "tools.0.input_schema.type"),
    (body(tool_choice={"type": "tool"}), "tool_choice.name: Field required", "tool_choice.name"),
    (body(tool_choice={"type": "required"}),
     "tool_choice.type: Input tag 'required' found using 'type' does not match any of the expected tags: "
     "'auto', 'any', 'tool', 'none'", "tool_choice.type"),
    (body(stream="yes"), "stream: Input should be a valid boolean", "stream"),
]


@pytest.mark.parametrize(("raw", "message", "param"), INVALID, ids=[i[1][:60] for i in INVALID])
def test_invalid_requests(raw: object, message: str, param: str | None) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        adapter.parse_messages_request(raw)
    assert (info.value.message, info.value.param) == (message, param)
    status, error = adapter.error_body(info.value)
    assert status == 400
    assert error == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def test_count_tokens_request_needs_no_max_tokens() -> None:
    raw = without("max_tokens")
    raw["thinking"] = {"type": "enabled", "budget_tokens": 5000}
    assert adapter.parse_count_tokens_request(raw).max_tokens is None


# --------------------------------------------------------------------------- count_tokens


COUNTED = {
    "minimal": body(),
    "system string": body(system="You are terse."),
    "claude code": claude_code_body(),
    "images": VALID[2][1],
    "tools only": body(tools=[tool("Read"), tool("Write", 8)]),
    "history": body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                              {"role": "user", "content": "c"}]),
}


@pytest.mark.parametrize("name", COUNTED)
def test_count_tokens_equals_usage_input_tokens(name: str) -> None:
    raw = COUNTED[name]
    request = adapter.parse_messages_request(raw)
    counted = adapter.count_tokens_response(adapter.parse_count_tokens_request(without_max_tokens(raw)))
    assert counted == {"input_tokens": count_input_tokens(request)}
    assert counted["input_tokens"] > 0
    anthropic.types.MessageTokensCount.model_validate(counted)


def without_max_tokens(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in ("max_tokens", "stream")}


def test_billing_header_does_not_count() -> None:
    raw = claude_code_body()
    plain = copy.deepcopy(raw)
    plain["system"] = plain["system"][1:]
    assert adapter.count_tokens_response(adapter.parse_messages_request(raw)) == adapter.count_tokens_response(
        adapter.parse_messages_request(plain)
    )


# --------------------------------------------------------------------------- streaming

END = [Usage(input_tokens=11, output_tokens=7), Finish()]


def encode(events: list[Event], input_tokens: int = 11) -> list[tuple[str, dict[str, Any]]]:
    stream = adapter.MessageStream(message_id="msg_01test", model="qwen3-coder", input_tokens=input_tokens)
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    assert stream.done
    return out


def validate_with_sdk(stream: list[tuple[str, dict[str, Any]]]) -> anthropic.types.Message | None:
    """Every event validates against the SDK types; the SDK's fold equals build_message."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for name, payload in stream:
        if name == "error":
            ErrorResponse.model_validate(payload)
            return None
        if name == "ping":
            continue
        event = STREAM_EVENT.validate_python(payload)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def roundtrip(events: list[Event]) -> list[tuple[str, dict[str, Any]]]:
    stream = encode(events)
    check_stream(stream)
    folded = validate_with_sdk(stream)
    if folded is not None:
        message = adapter.build_message(events, message_id="msg_01test", model="qwen3-coder")
        anthropic.types.Message.model_validate(message)
        assert folded.to_dict(exclude_unset=False) == anthropic.types.Message.model_validate(message).to_dict(
            exclude_unset=False
        )
    return stream


def names(stream: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        name if name != "content_block_delta" else payload["delta"]["type"] for name, payload in stream
    ]


def test_text_stream() -> None:
    stream = roundtrip([TextDelta(text="Hel"), TextDelta(text=""), TextDelta(text="lo"), *END])
    assert names(stream) == [
        "message_start", "content_block_start", "text_delta", "text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    start = stream[0][1]["message"]
    assert start["usage"] == {"input_tokens": 11, "output_tokens": 0,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert stream[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 11, "output_tokens": 7,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def test_thinking_then_text() -> None:
    events = [ThinkingDelta(text="Let me "), ThinkingDelta(text="think."), TextDelta(text="Answer"), *END]
    stream = roundtrip(events)
    assert names(stream) == [
        "message_start",
        "content_block_start", "thinking_delta", "thinking_delta", "signature_delta", "content_block_stop",
        "content_block_start", "text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    message = adapter.build_message(events, message_id="msg_01test", model="qwen3-coder")
    thinking, text = message["content"]
    assert thinking["thinking"] == "Let me think." and thinking["signature"]
    assert text == {"type": "text", "text": "Answer"}


def test_signature_is_deterministic() -> None:
    events = [ThinkingDelta(text="hm"), *END]
    assert encode(events) == encode(events)
    other = encode([ThinkingDelta(text="hmm"), *END])
    assert encode(events)[3] != other[3]


def test_thinking_only_closes_with_signature_at_finish() -> None:
    stream = roundtrip([ThinkingDelta(text="just thinking"), *END])
    assert names(stream)[-4:] == ["signature_delta", "content_block_stop", "message_delta", "message_stop"]


def test_tool_calls() -> None:
    events: list[Event] = [
        TextDelta(text="Let me look."),
        ToolCallStart(id="toolu_1", name="read_file", executed=False),
        ToolCallArgsDelta(id="toolu_1", json='{"file_'),
        ToolCallArgsDelta(id="toolu_1", json='path": "a.py"}'),
        ToolCallStart(id="toolu_2", name="list_dir", executed=False),
        Usage(input_tokens=11, output_tokens=20),
        Finish(reason=FinishReason.TOOL_USE),
    ]
    stream = roundtrip(events)
    assert [p["index"] for n, p in stream if n == "content_block_start"] == [0, 1, 2]
    message = adapter.build_message(events, message_id="msg_01test", model="qwen3-coder")
    assert message["content"][1:] == [
        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"file_path": "a.py"}},
        {"type": "tool_use", "id": "toolu_2", "name": "list_dir", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_result_closes_the_call_and_text_follows() -> None:
    events: list[Event] = [
        ToolCallStart(id="t1", name="read_file"),
        ToolCallArgsDelta(id="t1", json="{}"),
        ToolCallResult(id="t1", content="data"),
        TextDelta(text="Done."),
        *END,
    ]
    stream = roundtrip(events)
    assert names(stream) == [
        "message_start", "content_block_start", "input_json_delta", "content_block_stop",
        "content_block_start", "text_delta", "content_block_stop", "message_delta", "message_stop",
    ]


def test_arguments_for_a_closed_call_are_a_bug() -> None:
    stream = adapter.MessageStream(message_id="m", model="m", input_tokens=1)
    stream.start()
    stream.feed(ToolCallStart(id="t1", name="a"))
    stream.feed(TextDelta(text="x"))
    with pytest.raises(ValueError, match="t1"):
        stream.feed(ToolCallArgsDelta(id="t1", json="{}"))


@pytest.mark.parametrize(
    ("reason", "sequence", "expected"),
    [
        (FinishReason.STOP, None, "end_turn"),
        (FinishReason.CANCELLED, None, "end_turn"),
        (FinishReason.LENGTH, None, "max_tokens"),
        (FinishReason.STOP_SEQUENCE, "END", "stop_sequence"),
        (FinishReason.TOOL_USE, None, "tool_use"),
    ],
)
def test_stop_reasons(reason: FinishReason, sequence: str | None, expected: str) -> None:
    events: list[Event] = [TextDelta(text="x"), Usage(input_tokens=1, output_tokens=1),
                           Finish(reason=reason, stop_sequence=sequence)]
    stream = roundtrip(events)
    assert stream[-2][1]["delta"] == {"stop_reason": expected, "stop_sequence": sequence}
    message = adapter.build_message(events, message_id="m", model="m")
    assert (message["stop_reason"], message["stop_sequence"]) == (expected, sequence)


def test_empty_answer() -> None:
    stream = roundtrip(END)
    assert names(stream) == ["message_start", "message_delta", "message_stop"]
    assert adapter.build_message(END, message_id="m", model="m")["content"] == []


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        (ErrorKind.OVERLOADED, "overloaded_error"),
        (ErrorKind.UPSTREAM_ERROR, "api_error"),
        (ErrorKind.UPSTREAM_CLOSED, "api_error"),
        (ErrorKind.UPSTREAM_TIMEOUT, "timeout_error"),
        (ErrorKind.INTERNAL, "api_error"),
    ],
)
@pytest.mark.parametrize(
    "before",
    [[], [TextDelta(text="partial")], [ThinkingDelta(text="hm")],
     [ToolCallStart(id="t", name="n"), ToolCallArgsDelta(id="t", json='{"a"')]],
    ids=["no block", "in text", "in thinking", "in tool_use"],
)
def test_error_mid_stream(kind: ErrorKind, error_type: str, before: list[Event]) -> None:
    stream = roundtrip([*before, StreamError(kind=kind, message="Lingma went away")])
    assert stream[-1] == ("error", {"type": "error", "error": {"type": error_type, "message": "Lingma went away"}})
    if before:
        assert stream[-2][0] == "content_block_stop"
    with pytest.raises(errors.GatewayError) as info:
        adapter.build_message([*before, StreamError(kind=kind, message="x")], message_id="m", model="m")
    assert adapter.error_type(info.value) == error_type


def test_ping_anywhere_after_start() -> None:
    stream = adapter.MessageStream(message_id="m", model="m", input_tokens=1)
    out = [*stream.start(), stream.ping()]
    out += stream.feed(TextDelta(text="a"))
    out.append(stream.ping())
    for event in END:
        out += stream.feed(event)
    check_stream(out)
    assert stream.ping() == ("ping", {"type": "ping"})


def test_misuse_raises() -> None:
    stream = adapter.MessageStream(message_id="m", model="m", input_tokens=1)
    with pytest.raises(RuntimeError, match="before start"):
        stream.feed(TextDelta(text="a"))
    stream.start()
    with pytest.raises(RuntimeError, match="twice"):
        stream.start()
    stream.feed(Finish())
    with pytest.raises(RuntimeError, match="after end"):
        stream.feed(TextDelta(text="a"))


def test_build_message_without_finish_is_an_internal_error() -> None:
    with pytest.raises(errors.InternalError):
        adapter.build_message([TextDelta(text="a")], message_id="m", model="m")


# A property: any sequence of content events, however fragmented, encodes to a valid stream
# that the SDK folds into exactly the non-stream message.

_text = st.text(max_size=5)
_tool_call = st.builds(
    lambda n, parts: [ToolCallStart(id=f"toolu_{n}", name="tool"),
                      *[ToolCallArgsDelta(id=f"toolu_{n}", json=p) for p in parts]],
    st.integers(0, 10**6),
    st.lists(st.text(max_size=3), max_size=4).map(lambda ps: _split_json(ps)),
)


def _split_json(pieces: list[str]) -> list[str]:
    """Split a JSON object's text at arbitrary places (given by the pieces' lengths)."""
    text = json.dumps({"k": "".join(pieces)})
    cuts = sorted({min(len(p), len(text)) * i % (len(text) + 1) for i, p in enumerate(pieces, 1)})
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


_content = st.lists(
    st.one_of(
        _text.map(lambda t: [TextDelta(text=t)]),
        _text.map(lambda t: [ThinkingDelta(text=t)]),
        _tool_call,
    ),
    max_size=8,
)


@given(_content, st.sampled_from(list(FinishReason)), st.booleans())
def test_any_event_sequence_gives_a_valid_stream(
    groups: list[list[Event]], reason: FinishReason, fail: bool
) -> None:
    events = [e for group in groups for e in group]
    ids = [e.id for e in events if isinstance(e, ToolCallStart)]
    if len(ids) != len(set(ids)):
        return  # the core never repeats a tool call id
    terminal: list[Event] = (
        [StreamError(kind=ErrorKind.UPSTREAM_CLOSED, message="gone")]
        if fail
        else [Usage(input_tokens=3, output_tokens=4),
              Finish(reason=reason, stop_sequence="END" if reason is FinishReason.STOP_SEQUENCE else None)]
    )
    roundtrip([*events, *terminal])


# --------------------------------------------------------------------------- errors and ids


@pytest.mark.parametrize(
    ("exc", "status", "error_type"),
    [
        (errors.InvalidRequest("bad"), 400, "invalid_request_error"),
        (errors.AuthenticationFailed("who"), 401, "authentication_error"),
        (errors.PermissionDenied("no"), 403, "permission_error"),
        (errors.NotFound("none"), 404, "not_found_error"),
        (errors.ModelNotFound("model"), 404, "not_found_error"),
        (errors.RequestTooLarge("big"), 413, "request_too_large"),
        (errors.QueueFull("full"), 429, "rate_limit_error"),
        (errors.InternalError("bug"), 500, "api_error"),
        (errors.UpstreamFailed("lingma"), 502, "api_error"),
        (errors.UpstreamClosed("died"), 502, "api_error"),
        (errors.Overloaded("busy"), 503, "overloaded_error"),
        (errors.QueueTimeout("waited"), 503, "overloaded_error"),
        (errors.UpstreamUnavailable("none ready"), 503, "overloaded_error"),
        (errors.UpstreamTimeout("slow"), 504, "timeout_error"),
    ],
)
def test_error_body(exc: errors.GatewayError, status: int, error_type: str) -> None:
    got_status, error = adapter.error_body(exc, request_id="req_01abc")
    assert got_status == status
    assert error == {"type": "error", "error": {"type": error_type, "message": exc.message},
                     "request_id": "req_01abc"}
    if error_type != "request_too_large":  # documented by Anthropic, absent from the SDK's union
        ErrorResponse.model_validate(error)


def test_ids() -> None:
    assert re.fullmatch(r"msg_01[0-9A-Za-z]{22}", adapter.new_message_id())
    assert adapter.new_message_id() != adapter.new_message_id()


# --------------------------------------------------------------------------- the checker itself

GOOD = encode([ThinkingDelta(text="hm"), TextDelta(text="hi"), ToolCallStart(id="t", name="n"),
               ToolCallArgsDelta(id="t", json='{"a":1}'), Usage(input_tokens=1, output_tokens=1),
               Finish(reason=FinishReason.TOOL_USE)])
# GOOD: 0 message_start, 1 start thinking, 2 thinking_delta, 3 signature_delta, 4 stop,
#       5 start text, 6 text_delta, 7 stop, 8 start tool_use, 9 input_json_delta, 10 stop,
#       11 message_delta, 12 message_stop


def mutate(stream: list[tuple[str, dict[str, Any]]], at: int, /, **changes: Any) -> list[tuple[str, dict[str, Any]]]:
    out = copy.deepcopy(stream)
    out[at][1].update(changes)
    return out


def delete(*indices: int) -> list[tuple[str, dict[str, Any]]]:
    return [e for i, e in enumerate(copy.deepcopy(GOOD)) if i not in indices]


def insert(index: int, event: tuple[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = copy.deepcopy(GOOD)
    out.insert(index, event)
    return out


PING = ("ping", {"type": "ping"})
ERROR = ("error", {"type": "error", "error": {"type": "api_error", "message": "x"}})

BAD_STREAMS = [
    ([], "empty stream"),
    (delete(0), "first event must be 'message_start'"),
    ([PING, *GOOD], "first event must be 'message_start'"),
    (insert(1, GOOD[0]), "a second 'message_start'"),
    ([("message_stop", {"type": "message_delta"}), *GOOD[1:]], "event name 'message_stop' != payload type"),
    (insert(1, ("banana", {"type": "banana"})), "unknown event 'banana'"),
    (delete(4), "block 1 starts while block 0 is still open"),
    (mutate(GOOD, 5, index=2), "block index 2, expected 1"),
    (mutate(GOOD, 1, index=1), "block index 1, expected 0"),
    (mutate(GOOD, 6, index=0), "but the open block is 1"),
    (mutate(GOOD, 6, delta={"type": "thinking_delta", "thinking": "x"}), "'thinking_delta' inside a 'text' block"),
    (mutate(GOOD, 2, delta={"type": "text_delta", "text": "x"}), "'text_delta' inside a 'thinking' block"),
    (mutate(GOOD, 9, delta={"type": "text_delta", "text": "x"}), "'text_delta' inside a 'tool_use' block"),
    (delete(3), "stops without a final signature_delta"),
    (insert(4, GOOD[2]), "'thinking_delta' after the thinking block's signature_delta"),
    (delete(6), "text block 1 was opened for nothing"),
    (mutate(GOOD, 6, delta={"type": "text_delta", "text": ""}), "empty text_delta"),
    (mutate(GOOD, 5, content_block={"type": "text", "text": "early"}), "text block must start empty"),
    (mutate(GOOD, 8, content_block={"type": "tool_use", "id": "t", "name": "n", "input": {"a": 1}}),
     "must start with input {}"),
    (mutate(GOOD, 9, delta={"type": "input_json_delta", "partial_json": '{"a":'}), "partial_json does not parse"),
    (mutate(GOOD, 9, delta={"type": "input_json_delta", "partial_json": "[1]"}), "input is not a JSON object"),
    (delete(10), "'message_delta' while tool_use block 2 is still open"),
    (delete(11), "'message_stop' without a 'message_delta'"),
    (delete(12), "stream ends without 'message_stop' or 'error'"),
    (insert(12, GOOD[11]), "'message_delta' twice"),
    ([*GOOD, PING], "'ping' after the stream ended"),
    (mutate(GOOD, 11, delta={"stop_reason": None, "stop_sequence": None}), "stop_reason: None"),
    (mutate(GOOD, 11, delta={"stop_reason": "end_turn", "stop_sequence": "X"}), "does not fit stop_reason"),
    ([*GOOD[:3], ERROR], "'error' while thinking block 0 is still open"),
    ([*GOOD[:5], ERROR, PING], "'ping' after the stream ended"),
    ([*GOOD[:5], ("error", {"type": "error", "error": {"type": "oops", "message": "x"}})], "error.type: 'oops'"),
]


@pytest.mark.parametrize(("stream", "message"), BAD_STREAMS, ids=[b[1] for b in BAD_STREAMS])
def test_checker_rejects(stream: list[tuple[str, dict[str, Any]]], message: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_stream(stream)


def test_checker_accepts() -> None:
    check_stream(GOOD)
    check_stream([GOOD[0], PING, *GOOD[1:3], PING, *GOOD[3:11], PING, *GOOD[11:]])
    check_stream([*GOOD[:5], ERROR])
    check_stream([GOOD[0], ERROR])
    cut = mutate(GOOD, 9, delta={"type": "input_json_delta", "partial_json": '{"a":'})
    check_stream([*cut[:11], ERROR])  # a call cut off by an upstream failure
