"""End to end: the OpenAI Responses API through a real gateway and simulator, seen by the openai SDK
(``client.responses.create`` / ``.stream``) and by raw HTTP for the event grammar and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.test_e2e_tools import parse_sse

from .e2e_support import API_KEY, RunningGateway, run_gateway

WEATHER: Any = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"SSE_PING_INTERVAL": "5", "RESPONSES_STORE_SIZE": "4"}
    with run_gateway(tmp_path_factory.mktemp("responses"), env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


def _post(gw: RunningGateway, body: dict[str, Any]) -> httpx.Response:
    return gw.http.post(f"{gw.base_url}/responses", json=body, headers=gw.headers(), timeout=30)


def _get(gw: RunningGateway, path: str) -> httpx.Response:
    return gw.http.get(f"{gw.base_url}{path}", headers=gw.headers(), timeout=30)


def test_create_with_a_string_input(client: openai.OpenAI) -> None:
    response = client.responses.create(model="qwen3-coder", input="hello there")
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "Echo: hello there"
    assert [item.type for item in response.output] == ["message"]
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_create_with_items_instructions_and_unknown_fields(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="qwen3-coder", instructions="Be brief.", store=False, include=["reasoning.encrypted_content"],
        prompt_cache_key="k", truncation="auto", metadata={"a": "b"}, user="u", service_tier="auto",
        input=[{"role": "developer", "content": "Answer in English."},
               {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two words"}]}],
        tools=[{"type": "web_search"}],  # a tool type the gateway cannot serve: ignored
        extra_body={"safety_identifier": "s"},
    )
    assert response.output_text.startswith("Echo: ")
    assert response.instructions == "Be brief." and response.store is False


def test_reasoning_becomes_a_reasoning_item(client: openai.OpenAI) -> None:
    response = client.responses.create(model="qwen3-coder", input="[sim think] why", reasoning={"effort": "high"})
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text.startswith("Thinking about")
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0


def test_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(model="qwen3-coder", input="weather in Paris", tools=[WEATHER],
                                    tool_choice="required")
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    history: list[Any] = [{"role": "user", "content": "weather in Paris"}, *first.output,
                          {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}]
    second = client.responses.create(model="qwen3-coder", input=history, tools=[WEATHER])
    assert second.output_text == "The tool returned: sunny, 21 C"


def test_previous_response_id_continues_and_get_delete(gw: RunningGateway, client: openai.OpenAI) -> None:
    first = client.responses.create(model="qwen3-coder", input="weather in Rome", tools=[WEATHER],
                                    tool_choice="required")
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(
        model="qwen3-coder", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}])
    assert second.output_text == "The tool returned: rain"
    assert second.previous_response_id == first.id
    assert client.responses.retrieve(second.id).output_text == "The tool returned: rain"
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["function_call_output"] and items.first_id == items.last_id
    firsts = client.responses.input_items.list(first.id)
    assert [item.type for item in firsts.data] == ["message"] and not firsts.has_more
    assert _get(gw, f"/responses/{second.id}/input_items?limit=0").status_code == 400
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="qwen3-coder", previous_response_id="resp_unknown", input="again")
    assert info.value.code == "previous_response_not_found"
    # store: false is never kept
    unstored = client.responses.create(model="qwen3-coder", input="x", store=False)
    assert _post(gw, {"model": "qwen3-coder", "previous_response_id": unstored.id, "input": "y"}).status_code == 400


def test_stream_events_and_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="qwen3-coder", input="[sim think] stream me",
                                 reasoning={"effort": "low", "summary": "auto"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.reasoning_summary_text.delta" in types and "response.output_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text == "Echo: stream me"
    assert client.responses.retrieve(final.id).output_text == final.output_text  # streamed ones are kept too


def test_stream_function_call_arguments(client: openai.OpenAI) -> None:
    with client.responses.stream(model="qwen3-coder", input="weather in Oslo", tools=[WEATHER],
                                 tool_choice={"type": "function", "name": "get_weather"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    call = next(item for item in final.output if item.type == "function_call")
    assert len(done) == 1 and done[0].arguments == call.arguments and json.loads(call.arguments)["city"]
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == call.arguments


def test_raw_stream_grammar(gw: RunningGateway) -> None:
    with gw.http.stream("POST", f"{gw.base_url}/responses", headers=gw.headers(), timeout=30,
                      json={"model": "qwen3-coder", "input": "grammar", "stream": True}) as response:
        assert response.status_code == 200
        frames = parse_sse(response.read().decode().splitlines())
    names = [name for name, _ in frames]
    assert len(names) > 8
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * (len(names) - 8),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert all(data["type"] == name for name, data in frames)


def test_max_output_tokens_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="qwen3-coder", input="[sim long chunks=50]", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_stream_failure_is_response_failed(client: openai.OpenAI) -> None:
    with client.responses.stream(model="qwen3-coder", input="[sim error status=500 after=3]") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None and events[-1].response.error.code == "server_error"


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "qwen3-coder"}, "input"),
    ({"model": "qwen3-coder", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "qwen3-coder", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "qwen3-coder", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "qwen3-coder", "input": "x", "temperature": 9}, "temperature"),
])
def test_bad_requests_in_openai_shape(gw: RunningGateway, body: dict[str, Any], param: str) -> None:
    response = _post(gw, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_unknown_model_and_auth(gw: RunningGateway) -> None:
    assert _post(gw, {"model": "nope", "input": "x"}).json()["error"]["code"] == "model_not_found"
    response = gw.http.post(f"{gw.base_url}/responses", json={"model": "qwen3-coder", "input": "x"}, timeout=10)
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
