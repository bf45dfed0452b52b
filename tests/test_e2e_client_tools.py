"""End to end: client tools (function calling over Lingma's text channel) through a real gateway
and simulator, seen by the openai and anthropic SDKs.

The simulator plays a model that follows the gateway's ``<tool_call>`` convention
(simulator/_client_tools.py): it calls a tool with schema-valid arguments derived from the
request, answers ``The tool returned: ...`` once the conversation carries the result, and with
``[sim call bad=...]`` makes a faulty call that the gateway re-asks in the same session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.anthropic_grammar import check_stream
from tests.test_e2e_pool import all_asks
from tests.test_e2e_tools import parse_sse
from trio_lingma.protocol.client_tools import CALL_OPEN, REASK_HEADING, TOOLS_HEADING

from .e2e_support import API_KEY, RunningGateway, run_gateway

ANTHROPIC_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}

WEATHER = {"name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "unit": {"type": "string", "enum": ["C", "F"]}},
                          "required": ["city", "unit"]}}
TIME = {"name": "get_time", "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}
OAI_TOOLS: Any = [{"type": "function", "function": f} for f in (WEATHER, TIME)]
ANT_TOOLS: Any = [{"name": f["name"], "description": f["description"], "input_schema": f["parameters"]}
                  for f in (WEATHER, TIME)]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path_factory.mktemp("client-tools"), env={"SSE_PING_INTERVAL": "5"}) as gateway:
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def oai(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def ant(gw: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


def _assistant(message: Any) -> dict[str, Any]:
    calls = [{"id": c.id, "type": "function", "function": {"name": c.function.name,
                                                          "arguments": c.function.arguments}}
             for c in message.tool_calls]
    return {"role": "assistant", "content": message.content, "tool_calls": calls}


# --------------------------------------------------------------------------- OpenAI


def test_openai_two_turn_tool_loop(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim call] weather in Paris?"}]
    first = oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I will call get_weather."
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather", {"city": "weather in Paris?", "unit": "C"})
    assert first.usage is not None and first.usage.prompt_tokens > 100  # the tool block is counted
    messages += [_assistant(choice.message), {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "The tool returned: sunny, 21 C"
    assert not second.choices[0].message.tool_calls



def test_tool_results_go_into_the_session_that_made_the_call(gw: RunningGateway, oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim call] weather in Oslo, session reuse?"}]
    first = oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS)
    (call,) = first.choices[0].message.tool_calls or []
    # the client re-serialises the arguments its own way: the session is still found
    assistant = _assistant(first.choices[0].message)
    assistant["tool_calls"][0]["function"]["arguments"] = json.dumps(json.loads(call.function.arguments), indent=2)
    messages += [assistant, {"role": "tool", "tool_call_id": call.id, "content": "snow, -3 C"}]
    second = oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS)
    assert second.choices[0].message.content == "The tool returned: snow, -3 C"
    asks = [a for a in all_asks(gw) if "Oslo" in a["questionText"] or "snow, -3 C" in a["questionText"]]
    one, two = asks
    assert (one["isReply"], two["isReply"]) == (False, True) and one["sessionId"] == two["sessionId"]
    assert "weather in Oslo" not in two["questionText"]  # only the new turn: the tool result


def test_openai_stream_tool_loop_and_parallel_calls(oai: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "[sim call tool=get_weather,get_time] Paris"}]
    text, calls, reasons = "", {}, []
    with oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS,
                                     stream=True) as stream:
        for chunk in stream:
            choice = chunk.choices[0]
            reasons.append(choice.finish_reason)
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": delta.id, "name": "", "arguments": ""})
                entry["name"] += (delta.function and delta.function.name) or ""
                entry["arguments"] += (delta.function and delta.function.arguments) or ""
    assert text == "I will call get_weather, get_time." and CALL_OPEN not in text
    assert reasons[-1] == "tool_calls" and all(r is None for r in reasons[:-1])
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)] == [
        ("get_weather", {"city": "Paris", "unit": "C"}), ("get_time", {"tz": "Paris"})]
    messages.append({"role": "assistant", "content": text, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls.values()]})
    messages += [{"role": "tool", "tool_call_id": calls[0]["id"], "content": "rain"},
                 {"role": "tool", "tool_call_id": calls[1]["id"], "content": "10:00"}]
    answer = ""
    with oai.chat.completions.create(model="qwen3-coder", messages=messages, tools=OAI_TOOLS,
                                     stream=True) as stream:
        for chunk in stream:
            answer += chunk.choices[0].delta.content or ""
    assert answer == "The tool returned: rain; 10:00"


def test_openai_parallel_false_and_tool_choice(oai: openai.OpenAI) -> None:
    one = oai.chat.completions.create(model="qwen3-coder", tools=OAI_TOOLS, parallel_tool_calls=False,
                                      messages=[{"role": "user", "content": "[sim call tool=get_weather,get_time] x"}])
    assert [c.function.name for c in one.choices[0].message.tool_calls or []] == ["get_weather"]
    forced = oai.chat.completions.create(model="qwen3-coder", tools=OAI_TOOLS,
                                         tool_choice={"type": "function", "function": {"name": "get_time"}},
                                         messages=[{"role": "user", "content": "what time?"}])
    assert [c.function.name for c in forced.choices[0].message.tool_calls or []] == ["get_time"]
    plain = oai.chat.completions.create(model="qwen3-coder", tools=OAI_TOOLS, tool_choice="none",
                                        messages=[{"role": "user", "content": "hello"}])
    assert plain.choices[0].message.content == "Echo: hello" and plain.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("bad", ["syntax", "schema"])
def test_openai_invalid_call_is_reasked_in_the_same_session(gw: RunningGateway, oai: openai.OpenAI,
                                                            bad: str) -> None:
    before = len(all_asks(gw))
    done = oai.chat.completions.create(model="qwen3-coder", tools=OAI_TOOLS,
                                       messages=[{"role": "user", "content": f"[sim call bad={bad}] Oslo"}])
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather", {"city": "corrected", "unit": "C"})
    first, again = all_asks(gw)[before:]
    assert first["questionText"].startswith(TOOLS_HEADING) and not first["isReply"]
    assert again["questionText"].startswith(REASK_HEADING) and again["isReply"]
    assert again["sessionId"] == first["sessionId"]


def test_openai_stream_reasks_a_call_nothing_of_which_was_sent(oai: openai.OpenAI) -> None:
    names, reasons = [], []
    with oai.chat.completions.create(model="qwen3-coder", tools=OAI_TOOLS, stream=True,
                                     messages=[{"role": "user", "content": "[sim call bad=1] Oslo"}]) as stream:
        for chunk in stream:
            reasons.append(chunk.choices[0].finish_reason)
            names += [d.function.name for d in chunk.choices[0].delta.tool_calls or [] if d.function and d.function.name]
    assert names == ["get_weather"] and reasons[-1] == "tool_calls"


def test_openai_stream_with_a_streamed_invalid_call_ends_with_an_error(gw: RunningGateway) -> None:
    body = {"model": "qwen3-coder", "stream": True, "tools": OAI_TOOLS,
            "messages": [{"role": "user", "content": "[sim call bad=schema] Oslo"}]}
    with gw.http.stream("POST", gw.base_url + "/chat/completions", json=body, headers=gw.headers(), timeout=30) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    payloads = [json.loads(line[6:]) for line in lines if line != "data: [DONE]"]
    assert "error" in payloads[-1] and "invalid tool call" in payloads[-1]["error"]["message"]
    assert "data: [DONE]" not in lines


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_tool_use_then_tool_result_then_answer(ant: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "[sim call] weather in Rome?"}]
    first = ant.messages.create(model="qwen3-coder", max_tokens=1024, tools=ANT_TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert use.type == "tool_use" and use.id.startswith("toolu_01") and len(use.id) == 30
    assert (use.name, use.input) == ("get_weather", {"city": "weather in Rome?", "unit": "C"})
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                               "content": "cloudy", "is_error": False}]}]
    count = ant.messages.count_tokens(model="qwen3-coder", tools=ANT_TOOLS, messages=messages)
    second = ant.messages.create(model="qwen3-coder", max_tokens=1024, tools=ANT_TOOLS, messages=messages)
    assert second.stop_reason == "end_turn"
    assert [(b.type, getattr(b, "text", None)) for b in second.content] == [("text", "The tool returned: cloudy")]
    assert count.input_tokens == second.usage.input_tokens


def test_anthropic_stream_grammar_with_parallel_tool_use(gw: RunningGateway, ant: anthropic.Anthropic) -> None:
    body = {"model": "qwen3-coder", "max_tokens": 1024, "stream": True, "tools": ANT_TOOLS,
            "messages": [{"role": "user", "content": "[sim call tool=get_time,get_weather] Oslo"}]}
    with gw.http.stream("POST", gw.url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS, timeout=30) as r:
        assert r.status_code == 200
        events = parse_sse(list(r.iter_lines()))
    check_stream(events)
    starts = [p["content_block"] for n, p in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    assert [p["delta"]["stop_reason"] for n, p in events if n == "message_delta"] == ["tool_use"]
    deltas = [p["delta"] for n, p in events if n == "content_block_delta"]
    assert CALL_OPEN not in "".join(d.get("text", "") for d in deltas)
    with ant.messages.stream(model="qwen3-coder", max_tokens=1024, tools=ANT_TOOLS,
                             messages=body["messages"]) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_time", {"tz": "Oslo"}), ("get_weather", {"city": "Oslo", "unit": "C"})]
    assert final.stop_reason == "tool_use"


def test_anthropic_disable_parallel_and_any(ant: anthropic.Anthropic) -> None:
    one = ant.messages.create(model="qwen3-coder", max_tokens=512, tools=ANT_TOOLS,
                              tool_choice={"type": "any", "disable_parallel_tool_use": True},
                              messages=[{"role": "user", "content": "[sim call tool=get_time,get_weather] x"}])
    assert [b.name for b in one.content if b.type == "tool_use"] == ["get_time"]


def _claude_code_tools(count: int = 40) -> list[dict[str, Any]]:
    """Shaped like Claude Code's tool list: long descriptions, nested schemas, enums, arrays."""
    tools = []
    for i in range(count):
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
            "properties": {
                "file_path": {"type": "string", "description": "The absolute path to the file " * 5},
                "mode": {"type": "string", "enum": ["read", "write", "append"]},
                "limit": {"type": "number", "description": "How many lines to read"},
                "todos": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"content": {"type": "string", "minLength": 1},
                                   "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                                   "id": {"type": "string"}},
                    "required": ["content", "status", "id"]}},
            },
            "required": ["file_path", "mode", "todos"] if i % 2 == 0 else ["file_path"],
        }
        tools.append({"name": f"Tool{i}", "input_schema": schema,
                      "description": f"Tool number {i}. " + "Use this tool carefully; read the docs first. " * 40})
    return tools


def test_a_claude_code_shaped_request_gets_a_valid_tool_use(ant: anthropic.Anthropic) -> None:
    tools: Any = _claude_code_tools()
    with ant.messages.stream(model="qwen3-coder", max_tokens=4096, tools=tools, system="You are Claude Code.",
                             messages=[{"role": "user", "content": "[sim call tool=Tool6] fix the bug"}]) as stream:
        final = stream.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "Tool6" and final.stop_reason == "tool_use"
    assert use.input == {"file_path": "fix the bug", "mode": "read",
                         "todos": [{"content": "fix the bug", "status": "pending", "id": "fix the bug"}]}
    assert final.usage.input_tokens > 10_000
