"""End to end: structured output (chat ``response_format``, Responses ``text.format``) through a real
gateway and simulator, parsed by the openai SDK's own ``.parse()`` helpers into pydantic models."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pydantic
import pytest

from .e2e_support import API_KEY, RunningGateway, run_gateway


class Person(pydantic.BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path_factory.mktemp("structured"), env={"SSE_PING_INTERVAL": "5"}) as gateway:
        yield gateway


@pytest.fixture(scope="module")  # one client per gateway, as an application has
def client(gw: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.base_url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        yield client


@pytest.mark.parametrize("directive", ["", "[sim json bad=prose] ", "[sim json bad=schema] "])
def test_chat_completions_parse(client: openai.OpenAI, directive: str) -> None:
    completion = client.chat.completions.parse(
        model="qwen3-coder", messages=[{"role": "user", "content": f"{directive}Ada"}], response_format=Person)
    message = completion.choices[0].message
    assert message.parsed is not None and isinstance(message.parsed.age, int)
    assert message.content is not None and message.content.startswith("{")  # just the JSON, prose removed


def test_chat_completions_stream_with_a_schema(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="qwen3-coder", response_format=Person,
                                        messages=[{"role": "user", "content": "[sim json bad=syntax] Ada"}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed is not None


def test_json_object_mode(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="qwen3-coder", messages=[{"role": "user", "content": "list two colours"}],
        response_format={"type": "json_object"})
    content = completion.choices[0].message.content
    assert content is not None and content.startswith("{") and content.endswith("}")


def test_responses_parse_and_stream(client: openai.OpenAI) -> None:
    response = client.responses.parse(model="qwen3-coder", input="[sim json bad=schema] Grace", text_format=Person)
    assert response.output_parsed is not None and response.output_parsed.name
    with client.responses.stream(model="qwen3-coder", input="Grace", text_format=Person) as stream:
        final = stream.get_final_response()
    assert final.output_parsed is not None and isinstance(final.output_parsed.age, int)


def test_an_invalid_schema_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="qwen3-coder", messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": 3}}})
    assert "response_format.json_schema.schema" in str(info.value)


def test_anthropic_messages_parse_and_stream(gw: RunningGateway) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key=API_KEY, max_retries=0, timeout=30) as client:
        message = client.messages.parse(model="qwen3-coder", max_tokens=500, output_format=Person,
                                        messages=[{"role": "user", "content": "[sim json bad=prose] Ada"}])
        assert message.parsed_output is not None and message.parsed_output.name
        with client.messages.stream(model="qwen3-coder", max_tokens=500, output_format=Person,
                                    messages=[{"role": "user", "content": "[sim json bad=schema] Ada"}]) as stream:
            final = stream.get_final_message()
        assert final.parsed_output is not None and isinstance(final.parsed_output.age, int)
