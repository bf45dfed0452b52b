"""End to end: real gateway process + real simulator subprocess, driven by httpx and the anthropic SDK.

Every raw stream read here goes through the strict grammar checker (check_stream).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from .anthropic_grammar import check_stream
from .e2e_support import API_KEY, VARIANTS, RunningGateway, run_variant

MAX_BODY = 1024 * 1024
FIXTURES = Path(__file__).parent / "fixtures"
ANTHROPIC_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
# The smallest valid PNG (1x1, transparent).
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)).decode()


@pytest.fixture(scope="module", params=VARIANTS)
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"MAX_BODY_BYTES": str(MAX_BODY), "SSE_PING_INTERVAL": "0.5", "MODEL_ALIASES": "claude-opus-5*=qwen3-coder"}
    with run_variant(tmp_path_factory.mktemp("anthropic"), request.param, env=env) as gateway:
        gateway.variant = request.param
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def client(gw: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


def parse_sse(lines: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` pairs of an SSE body; every frame must carry both fields."""
    events, name, data = [], None, []
    for line in [*lines, ""]:
        if line == "":
            if name is not None or data:
                assert name is not None and data, f"incomplete SSE frame: {name!r} {data!r}"
                events.append((name, json.loads("\n".join(data))))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return events


def raw_stream(gw: RunningGateway, body: dict, *, path: str = "/v1/messages",
               headers: dict | None = None) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    """POST a streaming request; return the response and its grammar-checked events."""
    with gw.http.stream("POST", gw.url + path, json={**body, "stream": True},
                      headers=headers or ANTHROPIC_HEADERS, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.iter_lines())
    check_stream(events)
    return response, events


def _post(gw: RunningGateway, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return gw.http.post(gw.url + path, json=body, headers=ANTHROPIC_HEADERS if headers is None else headers,
                      timeout=30)


def _user(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "qwen3-coder", "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


# --------------------------------------------------------------------------- the SDK


def test_sdk_create(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(**_user("hi there"))
    message = raw.parse()
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Echo: hi there"
    assert message.model == "qwen3-coder"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0


def test_sdk_stream_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(**_user("[sim long chunks=20] go")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.count("chunk") == 20
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_sdk_stop_sequence_and_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(**_user("hello world", stop_sequences=["lo w"]))
    assert message.content[0].text == "Echo: hel"
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "lo w"
    message = client.messages.create(**{**_user("[sim long chunks=50] go"), "max_tokens": 3})
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


@pytest.mark.parametrize(
    "request_",
    [
        {"model": "qwen3-thinking", "messages": [{"role": "user", "content": "why"}]},
        {"model": "qwen3-coder", "messages": [{"role": "user", "content": "[sim think] why"}],
         "thinking": {"type": "enabled", "budget_tokens": 1024}},
    ],
    ids=["reasoning-model", "sim-think"],
)
def test_thinking_block_before_text(client: anthropic.Anthropic, gw: RunningGateway, request_: dict) -> None:
    request_ = {**request_, "max_tokens": 2048}
    message = client.messages.create(**request_)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking and message.content[0].signature
    with client.messages.stream(**request_) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    _, events = raw_stream(gw, request_)
    starts = [p["content_block"]["type"] for n, p in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]


def test_sdk_typed_errors(gw: RunningGateway, client: anthropic.Anthropic) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key="wrong", max_retries=0) as bad, \
            pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(**_user("x"))
    assert info.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="qwen3-coder", max_tokens=anthropic.omit,
                               messages=[{"role": "user", "content": "x"}])
    assert info.value.body["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(**{**_user("x"), "model": "claude-opus-9"})
    assert info.value.body["error"]["type"] == "not_found_error"
    assert info.value.request_id and info.value.request_id == info.value.body["request_id"]


def test_upstream_error_non_stream_and_stream(gw: RunningGateway, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(**_user("[sim error status=500] x"))
    assert info.value.status_code == 502 and info.value.body["error"]["type"] == "api_error"
    assert "500" in info.value.body["error"]["message"]
    with pytest.raises(anthropic.APIStatusError) as info, \
            client.messages.stream(**_user("[sim error status=500 after=2] x")) as stream:
        stream.get_final_message()
    assert "api_error" in str(info.value)
    _, events = raw_stream(gw, _user("[sim error status=500 after=2] x"))
    assert [n for n, _ in events][-2:] == ["content_block_stop", "error"]
    assert events[-1][1]["error"]["type"] == "api_error"


# --------------------------------------------------------------------------- raw wire


def test_raw_stream_shape_and_headers(gw: RunningGateway) -> None:
    headers = {**ANTHROPIC_HEADERS, "x-request-id": "req_mine"}
    response, events = raw_stream(gw, _user("[sim long chunks=5] hello"), headers=headers)
    assert response.headers["request-id"] == response.headers["x-request-id"] == "req_mine"
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names.count("message_start") == 1
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    assert events[-2][1]["usage"]["output_tokens"] > 0


def test_pings_while_upstream_is_silent(gw: RunningGateway) -> None:
    _, events = raw_stream(gw, _user("[sim slow delay=0.7] abc"))
    names = [n for n, _ in events]
    assert names.count("ping") >= 2  # the one after message_start and at least one in silence
    assert "ping" in names[names.index("content_block_start"):]


def test_bearer_auth_beta_query_and_headers(gw: RunningGateway) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    response = _post(gw, "/v1/messages?beta=true", _user("hey"), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "Echo: hey"
    response = _post(gw, "/v1/messages/count_tokens?beta=true", _user("hey"), headers=headers)
    assert response.status_code == 200 and response.json()["input_tokens"] > 0


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "kind"),
    [
        ("POST", "/v1/messages", _user("x"), {}, 401, "authentication_error"),
        ("POST", "/v1/messages", _user("x"), {"x-api-key": "nope"}, 401, "authentication_error"),
        ("POST", "/v1/messages/count_tokens", _user("x"), {}, 401, "authentication_error"),
        ("POST", "/v1/messages", {"model": "qwen3-coder", "messages": []}, None, 400, "invalid_request_error"),
        ("POST", "/v1/messages", {**_user("x"), "model": "gpt-17"}, None, 404, "not_found_error"),
        ("POST", "/v1/messages/count_tokens", {**_user("x"), "model": "gpt-17"}, None, 404, "not_found_error"),
        ("GET", "/v1/messages", None, None, 405, "invalid_request_error"),
        ("POST", "/v1/messages/batches", _user("x"), None, 404, "not_found_error"),
    ],
)
def test_errors_in_anthropic_shape(gw: RunningGateway, method, path, body, headers, status, kind) -> None:
    response = gw.http.request(method, gw.url + path, json=body, timeout=10,
                             headers=ANTHROPIC_HEADERS if headers is None else headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == kind and payload["error"]["message"]
    assert payload["request_id"] == response.headers["request-id"] == response.headers["x-request-id"]


def test_errors_outside_messages_stay_openai_shaped(gw: RunningGateway) -> None:
    response = gw.http.post(gw.url + "/v1/nope", json={}, headers=ANTHROPIC_HEADERS, timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert response.headers["request-id"]


def test_bad_json_and_oversize_bodies(gw: RunningGateway) -> None:
    response = gw.http.post(gw.url + "/v1/messages", content=b"{nope", headers=ANTHROPIC_HEADERS, timeout=10)
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    huge = _user("x" * (MAX_BODY + 1))
    response = _post(gw, "/v1/messages", huge)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "request_too_large"
    assert response.headers["request-id"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the app-level limit answers
        yield b'{"model": "qwen3-coder", "max_tokens": 5, "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"y" * 65536
        yield b'"}]}'

    response = gw.http.post(gw.url + "/v1/messages", content=chunked(),
                          headers={**ANTHROPIC_HEADERS, "content-type": "application/json"}, timeout=10)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "request_too_large"


# --------------------------------------------------------------------------- count_tokens == usage

_TOOL = {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

COUNT_SHAPES: dict[str, dict[str, Any]] = {
    "plain": {"messages": [{"role": "user", "content": "How many tokens is this?"}]},
    "system-string": {"system": "You are terse.", "messages": [{"role": "user", "content": "hi"}]},
    "system-blocks": {
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0.14; cc_entrypoint=cli"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Be careful with files."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
    },
    "tools": {"tools": [_TOOL], "tool_choice": {"type": "auto"},
              "messages": [{"role": "user", "content": "Weather in Paris?"}]},
    "images": {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What are these?"}]}]},
    "multi-turn-tools": {"tools": [_TOOL], "messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Two calls.", "signature": "c2ln"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": True,
             "content": [{"type": "text", "text": "service down"}]},
            {"type": "text", "text": "And tomorrow?"}]}]},
}


@pytest.mark.parametrize("shape", COUNT_SHAPES.values(), ids=COUNT_SHAPES.keys())
def test_count_tokens_equals_usage(client: anthropic.Anthropic, gw: RunningGateway, shape: dict) -> None:
    request_ = {"model": "qwen3-coder", **shape}
    counted = client.messages.count_tokens(**request_).input_tokens
    assert counted > 0
    assert client.messages.create(**request_, max_tokens=64).usage.input_tokens == counted
    _, events = raw_stream(gw, {**request_, "max_tokens": 64})
    assert events[0][1]["message"]["usage"]["input_tokens"] == counted
    assert events[-2][1]["usage"]["input_tokens"] == counted


def test_images_cost_more_than_their_text(client: anthropic.Anthropic) -> None:
    with_images = client.messages.count_tokens(model="qwen3-coder", **COUNT_SHAPES["images"]).input_tokens
    text_only = client.messages.count_tokens(
        model="qwen3-coder", messages=[{"role": "user", "content": "What are these?"}]).input_tokens
    assert with_images > text_only + 2 * 1000


# --------------------------------------------------------------------------- Claude Code


def claude_code_request(n_tools: int = 30, n_turns: int = 40) -> dict[str, Any]:
    """Shaped like what Claude Code sends (system blocks, tools, thinking, tool history)."""
    tools = [{
        "name": f"Tool_{i}", "description": f"Tool number {i}. " * 120,
        "input_schema": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
                         "additionalProperties": False, "required": ["path"],
                         "properties": {"path": {"type": "string", "description": "Absolute path. " * 10},
                                        **{f"opt_{k}": {"type": "integer", "description": f"option {k}"}
                                           for k in range(15)}}},
    } for i in range(n_tools)]
    messages: list[dict[str, Any]] = [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>context</system-reminder>"},
        {"type": "text", "text": "Fix the failing test.", "cache_control": {"type": "ephemeral"}}]}]
    for turn in range(n_turns):
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"Step {turn}."},
            {"type": "tool_use", "id": f"toolu_{turn:04d}", "name": f"Tool_{turn % n_tools}",
             "input": {"path": f"/src/file_{turn}.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{turn:04d}", "content": "line\n" * 50}]})
    messages[-1]["content"].append({"type": "text", "text": "continue"})
    return {
        "model": "qwen3-coder", "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0.14.abc; cc_entrypoint=cli"},
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Instructions. " * 500, "cache_control": {"type": "ephemeral"}},
        ],
        "messages": messages, "tools": tools,
        "metadata": {"user_id": "user_abc_account_def_session_0123"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "temperature": 1, "stream": True,
    }


def test_claude_code_shaped_request(gw: RunningGateway) -> None:
    # tool_choice none: the simulator echoes (offered tools make it call one: test_e2e_client_tools.py)
    request_ = {**claude_code_request(), "tool_choice": {"type": "none"}}
    assert 100_000 < len(json.dumps(request_)) < MAX_BODY
    headers = {"Authorization": f"Bearer {API_KEY}", "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                                 "fine-grained-tool-streaming-2025-05-14",
               "x-app": "cli", "user-agent": "claude-cli/2.0.14 (external, cli)"}
    response, events = raw_stream(gw, request_, path="/v1/messages?beta=true", headers=headers)
    assert response.headers["request-id"]
    text = "".join(p["delta"].get("text", "") for n, p in events if n == "content_block_delta")
    # The simulator echoes the flattened question: the billing header never reaches Lingma.
    assert text.startswith("Echo: ") and text.endswith("continue")
    assert "x-anthropic-billing-header" not in text and "Tool_29" in text
    counted = _post(gw, "/v1/messages/count_tokens?beta=true",
                    {k: v for k, v in request_.items() if k not in ("max_tokens", "stream")}, headers=headers)
    assert counted.status_code == 200, counted.text
    assert events[0][1]["message"]["usage"]["input_tokens"] == counted.json()["input_tokens"]


def test_lingma_tool_events_keep_the_grammar(gw: RunningGateway) -> None:
    _, events = raw_stream(gw, _user("[sim tools calls=2] look around"))
    assert [n for n, _ in events][-1] == "message_stop"


@pytest.mark.parametrize("fixture", ["claude_code_2.1.332_first_turn.json", "claude_code_2.1.332_tool_result_turn.json"])
def test_real_claude_code_request(gw: RunningGateway, fixture: str) -> None:
    # A real Claude Code 2.1 body (role: system messages, adaptive thinking, output_config,
    # context_management, defer_loading tools...), answered as a stream; count_tokens agrees.
    request_ = json.loads((FIXTURES / fixture).read_text())["body"]  # model claude-opus-5-5: MODEL_ALIASES
    headers = {**ANTHROPIC_HEADERS, "anthropic-beta": "claude-code-20250219,context-management-2025-06-27,"
                                                      "mid-conversation-tool-changes-2026-07-01,effort-2025-11-24"}
    _, events = raw_stream(gw, request_, path="/v1/messages?beta=true", headers=headers)
    assert events[-1][0] == "message_stop"
    assert events[0][1]["message"]["model"] == "claude-opus-5-5"  # the name the client asked for
    counted = _post(gw, "/v1/messages/count_tokens?beta=true",
                    {k: v for k, v in request_.items() if k not in ("max_tokens", "stream")}, headers=headers)
    assert counted.status_code == 200, counted.text
    assert events[0][1]["message"]["usage"]["input_tokens"] == counted.json()["input_tokens"]
