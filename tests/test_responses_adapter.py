"""The Responses API adapter: request translation, the streaming event grammar (every event checked
against the openai SDK's own types), the non-streaming object, and the response store."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent

from trio_lingma import errors
from trio_lingma.protocol.conversation import Message, ToolCall
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
from trio_lingma.protocol.responses import ResponseStore, ResponseStream, build_response, parse_responses_request
from trio_lingma.protocol.responses_store import input_items_page

# the SDK's event classes by their ``type`` tag
EVENT_TYPES = {typing.get_args(cls.model_fields["type"].annotation)[0]: cls
               for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])}
FN = {"type": "function", "name": "f", "parameters": {"type": "object"}}


def _parse(**body: Any) -> Any:
    return parse_responses_request({"model": "qwen3-coder", **body})


# --- requests ---------------------------------------------------------------------------------


def test_a_string_input_is_one_user_message() -> None:
    chat = _parse(input="hi", instructions="Be brief.", max_output_tokens=7).chat
    assert chat.messages == (Message(role="user", text="hi"),)
    assert chat.system == "Be brief." and chat.max_tokens == 7 and chat.include_usage


def test_items_become_the_neutral_conversation() -> None:
    request = _parse(input=[
        {"role": "developer", "content": "dev rules"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"},
                                                         {"type": "input_image", "image_url": "https://x/i.png"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x":1}'},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": ""},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        {"role": "system", "content": "late system"},
        {"role": "user", "content": "next"},
    ], instructions="inst")
    chat = request.chat
    assert chat.system == "inst\n\ndev rules"
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "tool", "system", "user"]
    assert chat.messages[0].images[0].url == "https://x/i.png"
    assert chat.messages[1] == Message(role="assistant", text="a", tool_calls=(
        ToolCall(id="c1", name="f", arguments='{"x":1}'), ToolCall(id="c2", name="f", arguments="{}")))
    assert chat.messages[3].text == "two" and chat.messages[3].tool_call_id == "c2"
    assert request.messages[0].role == "system"  # what previous_response_id continues from


def test_only_function_tools_are_served() -> None:
    tools = [FN, {"type": "web_search"}, {"type": "namespace", "name": "ns", "tools": []},
             {"type": "custom", "name": "c"}, {"type": "local_shell"}]
    request = _parse(input="x", tools=tools, tool_choice="required", parallel_tool_calls=False)
    assert [t.name for t in request.chat.tools] == ["f"]
    assert request.chat.tool_choice == "required" and not request.chat.parallel_tool_calls
    assert request.tools == tuple(tools)  # echoed as given


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", "auto"), ("none", "none"), ({"type": "function", "name": "f"}, {"name": "f"}),
    ({"type": "web_search"}, "auto"),
])
def test_tool_choice(choice: Any, expected: Any) -> None:
    assert _parse(input="x", tools=[FN], tool_choice=choice).chat.tool_choice == expected


def test_allowed_tools_restricts_the_offer() -> None:
    g = {**FN, "name": "g"}
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "g"}]}
    chat = _parse(input="x", tools=[FN, g], tool_choice=choice).chat
    assert [t.name for t in chat.tools] == ["g"] and chat.tool_choice == "required"
    assert _parse(input="x", tools=[FN], tool_choice={**choice, "mode": "auto", "tools": []}).chat.tools == ()


def test_reasoning_effort_asks_for_thinking() -> None:
    assert _parse(input="x", reasoning={"effort": "high", "summary": "auto"}).chat.thinking
    assert not _parse(input="x", reasoning={"summary": "auto"}).chat.thinking
    assert not _parse(input="x", reasoning={"effort": "minimal"}).chat.thinking


@pytest.mark.parametrize(("body", "param"), [
    ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    ({"input": [{"content": "no role or type"}]}, "input[0].type"),
    ({"input": [{"role": "assistant", "content": "last"}]}, "input"),
    ({"input": "x", "tools": [{"type": "function", "name": ""}]}, "tools[0].name"),
    ({"input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"input": "x", "tools": [FN], "tool_choice": {"type": "function", "name": "g"}}, "tool_choice.name"),
    ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ({"input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"input": "x", "tool_choice": {"type": "allowed_tools", "mode": "sometimes", "tools": []}}, "tool_choice"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        _parse(**body)
    assert info.value.param == param and info.value.message.startswith(param)


def test_previous_response_id_continues_a_stored_conversation() -> None:
    history = (Message(role="user", text="q"), Message(role="assistant", text="a"))
    request = parse_responses_request({"model": "m", "input": "more", "previous_response_id": "resp_1"},
                                      lookup={"resp_1": history}.get)
    assert request.chat.messages == (*history, Message(role="user", text="more"))
    with pytest.raises(errors.PreviousResponseNotFound) as info:
        parse_responses_request({"model": "m", "input": "x", "previous_response_id": "resp_2"}, lookup={}.get)
    assert info.value.status == 400 and info.value.code == "previous_response_not_found"


# --- the event grammar --------------------------------------------------------------------------


def _stream(*events: Event, **body: Any) -> tuple[ResponseStream, list[dict[str, Any]]]:
    stream = ResponseStream(_parse(input="x", **body), response_id="resp_t", created=1)
    out = stream.start()
    for event in events:
        out += stream.feed(event)
    for raw in out:
        EVENT_TYPES[raw["type"]].model_validate(raw)  # an event the SDK knows, with every required field
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return stream, out


def test_thinking_text_and_a_tool_call() -> None:
    stream, out = _stream(
        ThinkingDelta(text="hm"), ThinkingDelta(text="m"), TextDelta(text="Hel"), TextDelta(text="lo"),
        ToolCallStart(id="call_1", name="f", executed=False), ToolCallArgsDelta(id="call_1", json='{"a"'),
        ToolCallArgsDelta(id="call_1", json=":1}"), Usage(input_tokens=3, output_tokens=4),
        Finish(reason=FinishReason.TOOL_USE))
    assert [e["type"] for e in out] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = Response.model_validate(out[-1]["response"])
    assert final.status == "completed" and final.output_text == "Hello"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    call = final.output[2]
    assert call.type == "function_call" and call.call_id == "call_1" and call.arguments == '{"a":1}'
    assert final.usage is not None and final.usage.total_tokens == 7
    assert 0 < final.usage.output_tokens_details.reasoning_tokens <= 4
    assert out[0]["response"]["output"] == [] and out[0]["response"]["status"] == "in_progress"
    assert stream.done


def test_max_output_tokens_ends_incomplete() -> None:
    _, out = _stream(TextDelta(text="a"), Usage(input_tokens=1, output_tokens=1),
                     Finish(reason=FinishReason.LENGTH))
    assert out[-1]["type"] == "response.incomplete"
    assert out[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_failure_closes_the_open_item_and_fails_the_response() -> None:
    _, out = _stream(TextDelta(text="a"), StreamError(kind=ErrorKind.UPSTREAM_CLOSED, message="gone"),
                     TextDelta(text="ignored"))
    assert [e["type"] for e in out][-4:] == ["response.output_text.done", "response.content_part.done",
                                             "response.output_item.done", "response.failed"]
    assert out[-1]["type"] == "response.failed"
    assert out[-2]["type"] == "response.output_item.done" and out[-2]["item"]["status"] == "incomplete"
    assert out[-1]["response"]["error"] == {"code": "server_error", "message": "gone"}


def test_a_tool_lingma_ran_is_an_mcp_call_with_its_output() -> None:
    _, out = _stream(ToolCallStart(id="t1", name="read_file"), ToolCallArgsDelta(id="t1", json='{"p":1}'),
                     ToolCallResult(id="t1", content="text"), TextDelta(text="done"),
                     Usage(input_tokens=1, output_tokens=1), Finish())
    final = Response.model_validate(out[-1]["response"])
    mcp = final.output[0]
    assert mcp.type == "mcp_call" and mcp.output == "text" and mcp.arguments == '{"p":1}'
    assert mcp.server_label == "lingma" and mcp.status == "completed"
    assert final.output_text == "done"


def test_build_response_equals_the_streamed_final_response() -> None:
    events: list[Event] = [TextDelta(text="hi"), Usage(input_tokens=1, output_tokens=1), Finish()]
    request = _parse(input="x", text={"format": {"type": "json_object"}}, metadata={"k": "v"})
    built = build_response(events, request, response_id="resp_t", created=1)
    stream = ResponseStream(request, response_id="resp_t", created=1)
    streamed = [e for ev in events for e in stream.feed(ev)][-1]["response"]
    assert _without_ids(built) == _without_ids(streamed)
    assert built["text"] == {"format": {"type": "json_object"}} and built["metadata"] == {"k": "v"}
    with pytest.raises(errors.UpstreamTimeout):
        build_response([StreamError(kind=ErrorKind.UPSTREAM_TIMEOUT, message="slow")], request,
                       response_id="r", created=1)


def _without_ids(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "output": [{k: v for k, v in item.items() if k != "id"} for item in response["output"]]}


# --- the store ----------------------------------------------------------------------------------


def test_store_keeps_the_conversation_bounded() -> None:
    store = ResponseStore(2)
    request = _parse(input="q")
    events: list[Event] = [TextDelta(text="a"), ToolCallStart(id="c", name="f", executed=False),
                           Usage(input_tokens=1, output_tokens=1), Finish(reason=FinishReason.TOOL_USE)]
    for rid in ("r1", "r2", "r3"):
        store.keep(request, build_response(events, request, response_id=rid, created=1))
    assert store.get("r1") is None and len(store) == 2
    assert store.conversation("r3") == (Message(role="user", text="q"), Message(
        role="assistant", text="a", tool_calls=(ToolCall(id="c", name="f", arguments="{}"),)))
    assert store.delete("r3") and not store.delete("r3")
    stored = store.get("r2")
    assert stored is not None and stored.input_items[0]["type"] == "message"
    assert stored.input_items[0]["content"] == [{"type": "input_text", "text": "q"}]
    unstored = _parse(input="q", store=False)
    store.keep(unstored, build_response(events, unstored, response_id="r4", created=1))
    assert store.get("r4") is None


# --- real Codex requests -------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def test_codex_first_turn_is_accepted() -> None:
    """A real `codex exec` body (0.171.0, captured on loopback, long texts trimmed): developer
    messages, store false, include, prompt_cache_key, client_metadata, namespace/web_search tools."""
    body = json.loads((FIXTURES / "codex_0.171.0_first_turn.json").read_text())
    request = parse_responses_request(body)
    chat = request.chat
    assert chat.system.startswith("You are a coding agent running in the Codex CLI")
    assert [m.role for m in chat.messages] == ["user", "user"] and chat.messages[-1].text == "run echo hi"
    assert "exec_command" in {t.name for t in chat.tools}
    assert {t["type"] for t in request.tools} >= {"function", "namespace", "web_search"}
    assert chat.stream and chat.tool_choice == "auto" and request.wire.store is False


def test_codex_tool_output_turn_continues_the_assistant_turn() -> None:
    body = json.loads((FIXTURES / "codex_0.171.0_tool_output_turn.json").read_text())
    chat = parse_responses_request(body).chat
    assistant, result = chat.messages[-2:]
    assert assistant.role == "assistant" and assistant.tool_calls[0].name == "exec_command"
    assert result.role == "tool" and result.tool_call_id == assistant.tool_calls[0].id
    assert "hi" in result.text


def test_input_items_pages() -> None:
    items = tuple({"id": f"i{n}", "type": "message"} for n in range(5))
    page = input_items_page(items, limit=2)
    assert [i["id"] for i in page["data"]] == ["i4", "i3"] and page["has_more"] and page["last_id"] == "i3"
    page = input_items_page(items, order="asc", limit=2, after="i2")
    assert [i["id"] for i in page["data"]] == ["i3", "i4"] and not page["has_more"]
    assert input_items_page(items, after="nope")["data"] == []
