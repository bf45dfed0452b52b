"""End to end: the simulator's ``tools`` scenario (Lingma's agent running IDE tools, §4.2/§8)
through a real gateway process, seen by the openai and anthropic SDKs.

Legacy: the gateway plays the IDE and refuses every ``tool/invoke`` (ack +
``tool/invokeResult`` with ``success:false``), so the simulator reports each call as ERROR with
the refusal text — which proves the round trip happened and Lingma was not left waiting.
ACP (the realistic profile, over its WebSocket and its unix socket): the runtime runs the tools
itself and reports ``tool_call``/``tool_call_update`` updates with their output; TOOL_BRIDGE
presents both alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.anthropic_grammar import check_stream

from .e2e_support import ACP_VARIANTS, API_KEY, RunningGateway, run_variant

TOOLS = "read the files [sim tools calls=2]"
ECHO = "Echo: read the files"
REFUSAL = "does not execute IDE tools"
ANTHROPIC_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module", params=["legacy", "realistic-ws", "realistic-ipc"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with run_variant(tmp_path_factory.mktemp("tools"), request.param, env={"SSE_PING_INTERVAL": "5"}) as gateway:
        gateway.variant = request.param
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def oai(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


def expected_calls() -> list[tuple[str, dict[str, str]]]:
    return [("read_file", {"file_path": "/project/a.py"}), ("read_file", {"file_path": "/project/a1.py"})]


# --------------------------------------------------------------------------- OpenAI


def test_openai_non_stream_sees_tool_calls_and_stop(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="qwen3-coder", messages=[{"role": "user", "content": TOOLS}])
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"  # Lingma ran them: nothing for the client to do
    assert choice.message.content == ECHO  # markers gone, nothing leaked
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == expected_calls()
    assert all(c.id.startswith("sim-") and c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2


def test_openai_stream_argument_chunks_concatenate_to_json(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="qwen3-coder", messages=[{"role": "user", "content": TOOLS}], stream=True
    )
    text, calls, reasons = "", {}, []
    for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = slot["id"] or call.id
            if call.function is not None:
                slot["name"] += call.function.name or ""
                slot["arguments"] += call.function.arguments or ""
        reasons.append(chunk.choices[0].finish_reason)
    assert text == ECHO and "toolCall" not in text
    assert sorted(calls) == [0, 1]
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in (0, 1)] == expected_calls()
    assert reasons[-1] == "stop" and all(r is None for r in reasons[:-1])


def test_openai_error_status_still_stops_normally(oai: openai.OpenAI) -> None:
    content = "x [sim tools calls=1 status=ERROR]"
    completion = oai.chat.completions.create(model="qwen3-coder", messages=[{"role": "user", "content": content}])
    assert completion.choices[0].finish_reason == "stop"
    assert [c.function.name for c in completion.choices[0].message.tool_calls or []] == ["read_file"]
    assert completion.choices[0].message.content == "Echo: x"


# --------------------------------------------------------------------------- Anthropic


@pytest.fixture
def messages_route(gw: RunningGateway) -> None:
    probe = gw.http.post(f"{gw.url}/v1/messages", json={}, headers=ANTHROPIC_HEADERS, timeout=10)
    if probe.status_code == 404:
        pytest.fail("the Anthropic route /v1/messages is missing (404)")


def check_tool_blocks(content: list[dict[str, Any]], variant: str) -> None:
    """TOOL_BRIDGE=bridge (the default): calls Lingma ran are mcp_tool_use + mcp_tool_result,
    never tool_use (which a client would run again)."""
    kinds = [b["type"] for b in content]
    assert "tool_use" not in kinds and "mcp_tool_use" in kinds
    uses = [b for b in content if b["type"] == "mcp_tool_use"]
    assert [(b["name"], b["input"]) for b in uses] == expected_calls()
    texts = "".join(b["text"] for b in content if b["type"] == "text")
    assert texts == ECHO and "toolCall" not in texts
    results = {b["tool_use_id"]: b for b in content if b["type"] == "mcp_tool_result"}
    assert set(results) == {b["id"] for b in uses}
    if variant in ACP_VARIANTS:  # an ACP runtime ran them itself and reported their output
        texts = sorted(r["content"][0]["text"] for r in results.values())
        assert texts == [f"simulated contents of {args['file_path']}" for _, args in expected_calls()]
        assert not any(r["is_error"] for r in results.values())
        return
    for result in results.values():  # the gateway refused to run IDE tools: Lingma says ERROR
        assert result["is_error"] is True and REFUSAL in result["content"][0]["text"]


@pytest.mark.usefixtures("messages_route")
def test_anthropic_non_stream_sees_tool_blocks(gw: RunningGateway) -> None:
    body = {"model": "qwen3-coder", "max_tokens": 1024, "messages": [{"role": "user", "content": TOOLS}]}
    response = gw.http.post(f"{gw.url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["stop_reason"] == "end_turn"
    check_tool_blocks(message["content"], gw.variant)
    anthropic.types.beta.BetaMessage.model_validate(message)  # strict: every block type is known


@pytest.mark.usefixtures("messages_route")
def test_anthropic_stream_grammar_and_sdk(gw: RunningGateway) -> None:
    body = {"model": "qwen3-coder", "max_tokens": 1024, "stream": True,
            "messages": [{"role": "user", "content": TOOLS}]}
    with gw.http.stream("POST", f"{gw.url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS, timeout=30) as r:
        assert r.status_code == 200
        events = parse_sse(list(r.iter_lines()))
    events = [(n, p) for n, p in events if n != "ping"]
    check_stream(events)
    content: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for name, payload in events:
        if name == "content_block_start":
            content.append(dict(payload["content_block"]))
        elif name == "content_block_delta" and payload["delta"]["type"] == "input_json_delta":
            partial[payload["index"]] = partial.get(payload["index"], "") + payload["delta"]["partial_json"]
        elif name == "content_block_delta" and payload["delta"]["type"] == "text_delta":
            content[payload["index"]]["text"] += payload["delta"]["text"]
    for index, text in partial.items():
        content[index]["input"] = json.loads(text)
    check_tool_blocks(content, gw.variant)
    assert [p["delta"]["stop_reason"] for n, p in events if n == "message_delta"] == ["end_turn"]

    with anthropic.Anthropic(base_url=gw.url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        with client.beta.messages.stream(model="qwen3-coder", max_tokens=1024,
                                         messages=[{"role": "user", "content": TOOLS}]) as stream:
            final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    check_tool_blocks([b.model_dump() for b in final.content], gw.variant)


def parse_sse(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    events, name, data = [], None, []
    for line in [*lines, ""]:
        if line == "":
            if name is not None and data:
                events.append((name, json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].strip())
    return events


@pytest.mark.parametrize(("mode", "variant"), [("text", "legacy"), ("off", "legacy"), ("text", "realistic-ipc")])
def test_tool_bridge_setting_switches_the_representation(tmp_path, mode: str, variant: str) -> None:
    with run_variant(tmp_path, variant, env={"TOOL_BRIDGE": mode}) as gw, \
            openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        message = client.chat.completions.create(
            model="qwen3-coder", messages=[{"role": "user", "content": TOOLS}]).choices[0].message
        body = {"model": "qwen3-coder", "max_tokens": 512, "messages": [{"role": "user", "content": TOOLS}]}
        blocks = gw.http.post(f"{gw.url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS, timeout=30).json()["content"]
    assert message.tool_calls is None
    assert {b["type"] for b in blocks} == {"text"}
    assert "toolCall::" not in message.content
    if mode == "text":
        assert "read_file" in message.content and ECHO in message.content
        assert ("[tool result read_file: simulated contents of /project/a.py]" in message.content) is (
            variant in ACP_VARIANTS)
        # the realistic runtime publishes its plan first: a text line only in this mode
        assert ("[plan: read 2 file(s) (in_progress); answer (pending)]" in message.content) is (
            variant in ACP_VARIANTS)
    else:
        assert message.content == ECHO
