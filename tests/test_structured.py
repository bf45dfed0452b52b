"""Structured output: the JSON finder, the per-request policy (hold, check, re-ask once, strict),
the wire shapes of both OpenAI APIs, the question blocks, and the simulator's side."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trio_lingma import errors
from trio_lingma.protocol.anthropic import parse_messages_request
from trio_lingma.protocol.client_tools import fresh_question, reply_question
from trio_lingma.protocol.conversation import ChatRequest, Message, ResponseFormat
from trio_lingma.protocol.events import ErrorKind, Event, Finish, FinishReason, StreamError, TextDelta, ThinkingDelta
from trio_lingma.protocol.openai import parse_chat_request
from trio_lingma.protocol.responses import parse_responses_request
from trio_lingma.protocol.structured import (
    FORMAT_HEADING,
    FORMAT_REASK_HEADING,
    StructuredTurn,
    extract_json,
    format_block,
)
from trio_lingma.simulator._structured import structured_answer

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
STRICT = ResponseFormat(kind="json_schema", name="person", schema=PERSON, strict=True)
LOOSE = ResponseFormat(kind="json_schema", name="person", schema=PERSON)
OBJECT = ResponseFormat(kind="json_object")
GOOD = '{"name": "Ada", "age": 36}'


@pytest.mark.parametrize(("text", "found"), [
    (GOOD, GOOD),
    (f"  {GOOD}\n", GOOD),
    (f"Sure:\n```json\n{GOOD}\n```\nmore", GOOD),
    (f"The answer is {GOOD} as asked.", GOOD),
    ("[1, 2]", "[1, 2]"),
    ("no json {here", None),
])
def test_extract_json(text: str, found: str | None) -> None:
    got = extract_json(text)
    assert (got[0] if got else None) == found
    if got:
        assert json.loads(got[0]) == got[1]


def _answer(turn: StructuredTurn, *pieces: str) -> list[Event]:
    out = [e for p in pieces for e in turn.feed([TextDelta(text=p)])]
    assert out == []  # text is held until the answer ends
    return turn.feed([Finish()])


def test_a_good_answer_goes_out_as_just_the_json() -> None:
    turn = StructuredTurn(STRICT)
    assert _answer(turn, "```json\n{\"name\": \"Ada\",", ' "age": 36}\n```') == [TextDelta(text=GOOD), Finish()]
    assert turn.take_reask() is None


def test_a_bad_answer_is_reasked_once_then_strict_fails() -> None:
    turn = StructuredTurn(STRICT)
    assert _answer(turn, '{"name": "Ada"}') == []
    reask = turn.take_reask()
    assert reask is not None and reask.startswith(FORMAT_REASK_HEADING)
    assert "'age' is a required property" in reask and json.dumps(PERSON, separators=(",", ":")) in reask
    out = _answer(turn, '{"name": "Ada"}')
    assert len(out) == 1 and isinstance(out[0], StreamError) and out[0].kind is ErrorKind.UPSTREAM_ERROR
    assert "did not match the response format" in out[0].message


def test_the_reask_answer_can_succeed() -> None:
    turn = StructuredTurn(STRICT)
    _answer(turn, "I don't know")
    assert turn.take_reask() is not None
    assert _answer(turn, GOOD) == [TextDelta(text=GOOD), Finish()]


def test_without_strict_json_off_schema_is_delivered_after_the_reask() -> None:
    turn = StructuredTurn(LOOSE)
    _answer(turn, '{"name": 1}')
    assert turn.take_reask() is not None
    assert _answer(turn, '{"name": 1}') == [TextDelta(text='{"name": 1}'), Finish()]
    # ...but no JSON at all is an error whatever strict says
    turn = StructuredTurn(LOOSE, reasks=0)
    assert isinstance(_answer(turn, "prose only")[0], StreamError)


def test_a_schema_that_cannot_be_applied_is_not_enforced() -> None:
    unresolvable = ResponseFormat(kind="json_schema", schema={"$ref": "#/nowhere"}, strict=True)
    assert StructuredTurn(unresolvable).feed([TextDelta(text="{}"), Finish()]) == [TextDelta(text="{}"), Finish()]


def test_json_object_needs_an_object() -> None:
    turn = StructuredTurn(OBJECT, reasks=0)
    assert isinstance(_answer(turn, "[1]")[0], StreamError)
    assert StructuredTurn(OBJECT).feed([TextDelta(text='{"a": [1]}'), Finish()])[0] == TextDelta(text='{"a": [1]}')


def test_thinking_passes_and_tool_calls_release_the_text_unchecked() -> None:
    turn = StructuredTurn(STRICT)
    assert turn.feed([ThinkingDelta(text="hm"), TextDelta(text="calling")]) == [ThinkingDelta(text="hm")]
    finish = Finish(reason=FinishReason.TOOL_USE)
    assert turn.feed([finish]) == [TextDelta(text="calling"), finish]


def _fmt(body: dict[str, Any]) -> ResponseFormat | None:
    return parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "x"}], **body}).response_format


def test_chat_response_format_shapes() -> None:
    assert _fmt({}) is None and _fmt({"response_format": {"type": "text"}}) is None
    assert _fmt({"response_format": {"type": "json_object"}}) == OBJECT
    spec = {"name": "person", "schema": PERSON, "strict": True}
    assert _fmt({"response_format": {"type": "json_schema", "json_schema": spec}}) == STRICT


@pytest.mark.parametrize(("fmt", "param"), [
    ({"type": "json_schema", "json_schema": {"name": "p"}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "nope"}}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": {"$schema": 3}}},
     "response_format.json_schema.schema"),
    ({"type": "yaml"}, "response_format.type"),
])
def test_bad_chat_response_formats(fmt: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as info:
        _fmt({"response_format": fmt})
    assert info.value.param == param


def test_responses_text_format() -> None:
    def fmt(text: dict[str, Any]) -> ResponseFormat | None:
        return parse_responses_request({"model": "m", "input": "x", "text": text}).chat.response_format
    assert fmt({"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}}) == STRICT
    assert fmt({"format": {"type": "text"}}) is None and fmt({"verbosity": "low"}) is None
    with pytest.raises(errors.InvalidRequest) as info:
        fmt({"format": {"type": "json_schema", "name": "p"}})
    assert info.value.param == "text.format.schema"


def test_anthropic_output_config_and_output_format() -> None:
    def fmt(**body: Any) -> ResponseFormat | None:
        return parse_messages_request({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}],
                                       **body}).response_format
    strict = ResponseFormat(kind="json_schema", schema=PERSON, strict=True)
    assert fmt(output_config={"format": {"type": "json_schema", "schema": PERSON}}) == strict
    assert fmt(output_format={"type": "json_schema", "schema": PERSON}) == strict
    assert fmt(output_config={"effort": "high"}) is None
    with pytest.raises(errors.InvalidRequest) as info:
        fmt(output_config={"format": {"type": "json_schema", "schema": {"type": 3}}})
    assert info.value.param == "output_config.format.schema"


def test_the_format_block_ends_every_question() -> None:
    request = ChatRequest(model="m", system="sys", response_format=STRICT, messages=(
        Message(role="user", text="q"), Message(role="assistant", text="a"), Message(role="user", text="who?")))
    block = format_block(STRICT)
    assert block.startswith(FORMAT_HEADING) and "JSON Schema: " in block
    assert fresh_question(request).endswith("\n\n" + block)
    assert reply_question(request) == "who?\n\n" + block


@pytest.mark.parametrize(("directive", "valid"), [("", True), ("[sim json bad=prose] ", True),
                                                   ("[sim json bad=schema] ", False),
                                                   ("[sim json bad=syntax] ", False)])
def test_the_simulator_answers_with_json(directive: str, valid: bool) -> None:
    question = f"{directive}Ada\n\n{format_block(STRICT)}"
    answer = structured_answer(question)
    assert answer is not None
    found = extract_json(answer)
    assert (found is not None and set(found[1]) == {"name", "age"}) is valid
    corrected = structured_answer(f"{FORMAT_REASK_HEADING}\nwhy\nJSON Schema: {json.dumps(PERSON)}")
    assert corrected is not None and set(json.loads(corrected)) == {"name", "age"}
    assert structured_answer("[sim think] no format block") is None
