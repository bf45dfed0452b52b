"""Client tools over the text channel: the convention, the one matcher, validation, the policy."""

from __future__ import annotations

import itertools
import json
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.protocol.client_tools import (
    CALL_CLOSE,
    CALL_OPEN,
    REASK_HEADING,
    TOOLS_HEADING,
    ClientToolTurn,
    Toolbox,
    ToolCallFilter,
    describe_tools,
    fresh_question,
    new_call_id,
    offers_tools,
    parse_tool_calls,
    reply_question,
)
from trio_lingma.protocol.client_tools._scan import Expect, JsonScan
from trio_lingma.protocol.conversation import ChatRequest, Message, ToolSpec, flatten
from trio_lingma.protocol.events import (
    ErrorKind,
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolCallArgsDelta,
    ToolCallStart,
)
from trio_lingma.simulator._client_tools import client_tool_answer, fill_arguments
from trio_lingma.simulator._plan import Ask, plan_turn
from trio_lingma.simulator._scenario import DirectiveError

WEATHER = ToolSpec(name="get_weather", description="Weather now", parameters={
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
})
TIME = ToolSpec(name="get_time", description="Time now", parameters={
    "type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["tz"],
})
TOOLS = (WEATHER, TIME)


def _request(text: str = "weather in Paris?", **kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message(role="user", text=text),), tools=TOOLS, **kw)


def _ids() -> Any:
    counter = itertools.count()
    return lambda: f"id{next(counter)}"


def _block(name: str, arguments: Any) -> str:
    return f"{CALL_OPEN}\n{json.dumps({'name': name, 'arguments': arguments})}\n{CALL_CLOSE}"


def _run(text: str, cuts: list[int], *, box: Toolbox | None = None, incremental: bool = True) -> Any:
    """Feed ``text`` split at ``cuts``; a summary that must not depend on the split."""
    flt = ToolCallFilter(box or Toolbox(TOOLS), new_id=_ids(), incremental=incremental)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(text)}), len(text)]
    events: list[Event] = []
    for a, b in itertools.pairwise(bounds):
        events += flt.feed(text[a:b])
    events += flt.close()
    return _summary(events), flt.calls, flt.problem


def _summary(events: list[Event]) -> tuple[str, list[tuple[str, str, str]]]:
    """(text, [(id, name, concatenated arguments)]), checking the events are well formed."""
    text, calls, open_id = "", {}, None
    for event in events:
        match event:
            case TextDelta(text=piece):
                assert piece, "no empty text deltas"
                text += piece
            case ToolCallStart(id=call_id, name=name, executed=executed):
                assert not executed and call_id not in calls
                calls[call_id], open_id = (name, ""), call_id
            case ToolCallArgsDelta(id=call_id, json=piece):
                assert call_id == open_id and piece
                calls[call_id] = (calls[call_id][0], calls[call_id][1] + piece)
    assert CALL_OPEN not in text and CALL_CLOSE not in text
    return text, [(i, n, a) for i, (n, a) in calls.items()]


# --------------------------------------------------------------------------- the question


def test_the_tool_block_opens_a_fresh_question_and_lists_every_tool() -> None:
    request = _request(system="Be terse.")
    question = fresh_question(request)
    block = describe_tools(request)
    assert question == f"{block}\n\n{flatten(request)}"
    assert question.startswith(TOOLS_HEADING)
    lines = block.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["get_weather", "get_time"]
    assert json.loads(lines[0])["parameters"] == WEATHER.parameters
    assert CALL_OPEN in block and CALL_CLOSE in block


@pytest.mark.parametrize(("choice", "parallel", "rule"), [
    (None, True, "When no tool is needed"),
    ("auto", True, "When no tool is needed"),
    ("required", True, "You must call at least one tool"),
    ({"name": "get_time"}, True, "You must call the tool `get_time`"),
    ("auto", False, "Call at most one tool"),
])
def test_tool_choice_and_parallelism_become_rules(choice: Any, parallel: bool, rule: str) -> None:
    request = _request(tool_choice=choice, parallel_tool_calls=parallel)
    assert rule in describe_tools(request)
    assert rule in reply_question(request)


def test_tool_choice_none_offers_no_tools() -> None:
    request = _request(tool_choice="none")
    assert not offers_tools(request)
    assert fresh_question(request) == flatten(request) == "weather in Paris?"
    assert "Do not call any tool" in reply_question(request)
    assert fresh_question(attrs.evolve(request, tools=())) == "weather in Paris?"


def test_ids_follow_each_wire_style() -> None:
    assert new_call_id().startswith("call_") and len(new_call_id()) == 29
    assert new_call_id("toolu_").startswith("toolu_01") and len(new_call_id("toolu_")) == 30


# --------------------------------------------------------------------------- the matcher


def test_text_then_two_calls_stream_in_order() -> None:
    text = f"Let me check.\n\n{_block('get_weather', {'city': 'Paris'})}\n{_block('get_time', {'tz': 'UTC'})}"
    (plain, calls), parsed, problem = _run(text, list(range(len(text))))
    assert plain == "Let me check." and problem is None
    assert [(c[1], json.loads(c[2])) for c in calls] == [("get_weather", {"city": "Paris"}),
                                                          ("get_time", {"tz": "UTC"})]
    assert [p.arguments for p in parsed] == [{"city": "Paris"}, {"tz": "UTC"}]


def test_arguments_stream_while_they_arrive() -> None:
    flt = ToolCallFilter(Toolbox(TOOLS), new_id=_ids())
    assert flt.feed('<tool_call>{"name": "get_weather", "arguments": {"ci') == [
        ToolCallStart(id="id0", name="get_weather", executed=False),
        ToolCallArgsDelta(id="id0", json='{"ci')]
    assert flt.feed('ty": "Paris"}}') == [ToolCallArgsDelta(id="id0", json='ty": "Paris"}')]
    assert flt.feed("</tool_call>") == [] and flt.calls[0].arguments == {"city": "Paris"}


def test_a_partial_open_tag_is_held_then_released_as_text() -> None:
    flt = ToolCallFilter(Toolbox(TOOLS))
    assert flt.feed("a <tool_c") == [TextDelta(text="a")]
    assert "".join(e.text for e in flt.feed("ar> b") if isinstance(e, TextDelta)) == " <tool_car> b"
    assert flt.feed("<tool") == [] and flt.close() == [TextDelta(text="<tool")]


def test_text_after_the_first_call_is_dropped_but_later_calls_count() -> None:
    text = f"{_block('get_weather', {'city': 'X'})}\n<tool_response>sunny</tool_response> ok\n" \
           f"{_block('get_time', {'tz': 'CET'})} bye"
    plain, calls, problem = parse_tool_calls(text, Toolbox(TOOLS))
    assert plain == "" and [c.name for c in calls] == ["get_weather", "get_time"] and problem is None


def test_a_close_tag_inside_a_json_string_does_not_end_the_call() -> None:
    args = {"city": f"odd {CALL_CLOSE} city"}
    plain, calls, problem = parse_tool_calls("x " + _block("get_weather", args), Toolbox(TOOLS))
    assert plain == "x" and calls[0].arguments == args and problem is None


@pytest.mark.parametrize(("body", "arguments"), [
    ('{"name": "get_weather", "parameters": {"city": "A"}}', {"city": "A"}),
    ('{"name": "get_weather", "input": {"city": "A"}}', {"city": "A"}),
    ('{"name": "get_weather", "arguments": "{\\"city\\": \\"A\\"}"}', {"city": "A"}),
    ('{"arguments": {"city": "A"}, "name": "get_weather"}', {"city": "A"}),
    ("<function=get_weather>\n<parameter=city>\nA\n</parameter>\n<parameter=days>\n2\n</parameter>\n</function>",
     {"city": "A", "days": 2}),
])
def test_tolerated_call_shapes(body: str, arguments: dict[str, Any]) -> None:
    plain, calls, problem = parse_tool_calls(f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}", Toolbox(TOOLS))
    assert problem is None and calls[0].arguments == arguments


def test_a_missing_close_tag_at_the_end_is_forgiven() -> None:
    for tail in ("", "\n", "\n</tool_c"):
        plain, calls, problem = parse_tool_calls('ok <tool_call>{"name":"get_time","arguments":{"tz":"UTC"}}' + tail,
                                                 Toolbox(TOOLS))
        assert (plain, calls[0].name, problem) == ("ok", "get_time", None)


@pytest.mark.parametrize(("body", "why"), [
    ('get_weather(city="A")', "not one JSON object"),
    ("[1, 2]", "must be a JSON object"),
    ('{"arguments": {}}', 'no "name"'),
    ('{"name": "nope", "arguments": {}}', "no tool named 'nope'"),
    ('{"name": "get_weather", "arguments": {"days": 0}}', "'city' is a required property"),
    ('{"name": "get_weather", "arguments": {"city": "A", "days": 0}}', "arguments.days: 0 is less than"),
    ('{"name": "get_weather", "arguments": [1]}', "must be a JSON object"),
    ('{"name": "get_weather", "arguments": "nope"}', "not JSON"),
    ('{"name": "get_weather", "arguments": {"city": "A"}', "not one JSON object"),
    ("<function=get_weather><parameter=city>A</parameter>", "not closed"),
])
def test_malformed_and_invalid_calls_become_one_problem(body: str, why: str) -> None:
    text = f"hi {CALL_OPEN}{body}{CALL_CLOSE} more"
    for incremental in (True, False):
        (plain, _), calls, problem = _run(text, [], incremental=incremental)
        assert plain == "hi" and calls == [] and problem is not None
        assert why in problem.message


def test_an_invalid_schema_is_not_enforced() -> None:
    odd = ToolSpec(name="odd", parameters={"type": "no-such-type"})
    _, calls, problem = parse_tool_calls(_block("odd", {"x": 1}), Toolbox((odd,)))
    assert problem is None and calls[0].arguments == {"x": 1}


def test_a_call_to_another_tool_than_the_chosen_one_is_refused() -> None:
    box = Toolbox(TOOLS, choice={"name": "get_time"})
    flt = ToolCallFilter(box)
    events = flt.feed(_block("get_weather", {"city": "A"}))
    assert events == [] and flt.problem is not None and "must call the tool 'get_time'" in flt.problem.message


def test_parallel_false_keeps_only_the_first_call_block() -> None:
    text = _block("get_weather", {"city": "A"}) + _block("nope", {}) + _block("get_time", {"tz": "UTC"})
    plain, calls, problem = parse_tool_calls(text, Toolbox(TOOLS, parallel=False))
    assert [c.name for c in calls] == ["get_weather"] and problem is None


def test_a_faulty_call_whose_arguments_streamed_is_marked_sent() -> None:
    flt = ToolCallFilter(Toolbox(TOOLS))
    events = flt.feed('<tool_call>{"name": "get_weather", "arguments": {"days": 3}}</tool_call>')
    assert isinstance(events[0], ToolCallStart) and flt.problem is not None and flt.problem.sent
    buffered = ToolCallFilter(Toolbox(TOOLS), incremental=False)
    assert buffered.feed('<tool_call>{"name": "get_weather", "arguments": {"days": 3}}</tool_call>') == []
    assert buffered.problem is not None and not buffered.problem.sent


# --------------------------------------------------------------------------- properties

_NAMES = st.sampled_from(["get_weather", "get_time", "nope"])
_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=6)
_GOOD = st.builds(lambda c, d: _block("get_weather", {"city": c, "days": d}), st.text(max_size=12),
                  st.integers(1, 9))
_ANY_CALL = st.builds(lambda n, a, sp: CALL_OPEN + sp + json.dumps({"name": n, "arguments": a}) + sp + CALL_CLOSE,
                      _NAMES, st.dictionaries(st.text(max_size=5), _VALUES, max_size=3), st.sampled_from(["", "\n", " "]))
_PIECES = list("ab <>/_{}\"\\:,\n") + ["<tool", "<tool_call", "</tool_call>", "<tool_call>", "{\"name\":"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
_OUTPUT = st.lists(st.one_of(_GOOD, _ANY_CALL, _TEXT, st.text(max_size=10)), max_size=6).map("".join)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(_OUTPUT, st.lists(st.integers(0, 400), max_size=25), st.booleans())
def test_any_split_gives_the_same_text_calls_and_problem(text: str, cuts: list[int], incremental: bool) -> None:
    whole = _run(text, [], incremental=incremental)
    assert _run(text, cuts, incremental=incremental) == whole
    assert _run(text, list(range(len(text))), incremental=incremental) == whole


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(_OUTPUT, st.lists(st.integers(0, 400), max_size=10))
def test_every_emitted_valid_call_carries_its_validated_arguments(text: str, cuts: list[int]) -> None:
    (plain, streamed), calls, problem = _run(text, cuts)
    by_id = {c.id: c for c in calls}
    for call_id, name, arguments in streamed:
        if call_id in by_id:  # emitted and judged valid at its end
            assert by_id[call_id].name == name and json.loads(arguments) == by_id[call_id].arguments
            jsonschema.validate(by_id[call_id].arguments, {t.name: t for t in TOOLS}[name].parameters)
        else:  # streamed, then found faulty: the problem says part of it was sent
            assert problem is not None and problem.sent
    assert set(by_id) <= {s[0] for s in streamed}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.lists(st.integers(0, 200), max_size=10))
def test_arbitrary_text_never_crashes(text: str, cuts: list[int]) -> None:
    _run(text, cuts)
    _run(CALL_OPEN + text, cuts)


# --------------------------------------------------------------------------- the policy


def _turn(answer: str, *, stream: bool = True, **kw: Any) -> tuple[ClientToolTurn, list[Event]]:
    turn = ClientToolTurn(_request(**kw), incremental=stream, new_id=_ids())
    return turn, turn.feed([TextDelta(text=answer), Finish()])


def test_valid_calls_end_the_turn_with_tool_use() -> None:
    turn, events = _turn("ok " + _block("get_time", {"tz": "UTC"}))
    assert events[-1] == Finish(reason=FinishReason.TOOL_USE) and turn.reask is None
    assert [c.name for c in turn.calls] == ["get_time"]


def test_a_plain_answer_ends_as_it_did() -> None:
    turn, events = _turn("just text")
    assert events == [TextDelta(text="just text"), Finish()]


def test_other_events_pass_untouched() -> None:
    turn = ClientToolTurn(_request(), incremental=True)
    error = StreamError(kind=ErrorKind.UPSTREAM_CLOSED, message="gone")
    assert turn.feed([ThinkingDelta(text="hm"), error]) == [ThinkingDelta(text="hm"), error]


@pytest.mark.parametrize("stream", [True, False])
def test_a_bad_call_is_reasked_once_then_an_error(stream: bool) -> None:
    turn, events = _turn('x <tool_call>get_time()</tool_call>', stream=stream)
    assert events == [TextDelta(text="x")]
    reask = turn.take_reask()
    assert reask is not None and reask.startswith(REASK_HEADING) and turn.take_reask() is None
    events = turn.feed([TextDelta(text="<tool_call>still bad</tool_call>"), Finish()])
    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert events[0].kind is ErrorKind.UPSTREAM_ERROR and "after one retry" in events[0].message


def test_the_reask_names_the_schema_and_the_corrected_call_finishes() -> None:
    turn, _ = _turn(_block("get_weather", {"city": "A"}) + _block("get_time", {"tz": "PST"}), stream=False)
    reask = turn.take_reask()
    assert reask is not None and json.dumps(TIME.parameters, separators=(",", ":")) in reask
    assert "other 1 tool call(s) were accepted" in reask
    events = turn.feed([TextDelta(text=_block("get_time", {"tz": "CET"})), Finish()])
    assert events[-1] == Finish(reason=FinishReason.TOOL_USE)
    assert [c.name for c in turn.calls] == ["get_weather", "get_time"]


def test_a_streamed_faulty_call_is_an_error_at_once() -> None:
    turn, events = _turn('<tool_call>{"name": "get_weather", "arguments": {"days": 2}}</tool_call>')
    assert isinstance(events[-1], StreamError) and "already sent" in events[-1].message
    assert turn.reask is None


@pytest.mark.parametrize("choice", ["required", {"name": "get_time"}])
def test_a_mandatory_call_that_never_comes_is_reasked_then_an_error(choice: Any) -> None:
    turn, events = _turn("no tools today", tool_choice=choice)
    assert events == [TextDelta(text="no tools today")]
    reask = turn.take_reask()
    assert reask is not None and "had none" in reask
    assert isinstance(turn.feed([TextDelta(text="still none"), Finish()])[-1], StreamError)


def test_a_required_call_after_the_reask_succeeds() -> None:
    turn, _ = _turn("none", tool_choice="required")
    assert turn.take_reask()
    assert turn.feed([TextDelta(text=_block("get_time", {"tz": "UTC"})), Finish()])[-1].reason is FinishReason.TOOL_USE  # type: ignore[union-attr]


def test_parallel_false_keeps_one_call_per_request() -> None:
    turn, events = _turn(_block("get_time", {"tz": "UTC"}) * 3, parallel_tool_calls=False)
    assert sum(isinstance(e, ToolCallStart) for e in events) == 1


# --------------------------------------------------------------------------- the simulated model


def _answer(text: str, **kw: Any) -> str:
    answer = client_tool_answer(fresh_question(_request(text, **kw)))
    assert answer is not None
    return answer


def test_the_simulator_calls_the_first_tool_with_valid_arguments() -> None:
    plain, calls, problem = parse_tool_calls(_answer("[sim call] weather in Paris?"), Toolbox(TOOLS))
    assert problem is None and [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "weather in Paris?"})]
    assert plain == "I will call get_weather."


def test_the_simulator_follows_its_directive_and_tool_choice() -> None:
    _, calls, _ = parse_tool_calls(_answer("[sim call tool=get_time,get_weather] now"), Toolbox(TOOLS))
    assert [c.name for c in calls] == ["get_time", "get_weather"]
    _, calls, _ = parse_tool_calls(_answer("hi", tool_choice={"name": "get_time"}), Toolbox(TOOLS))
    assert [c.name for c in calls] == ["get_time"]
    assert client_tool_answer(fresh_question(_request("[sim slow] x"))) is None
    assert client_tool_answer("plain question") is None
    with pytest.raises(DirectiveError):
        client_tool_answer(fresh_question(_request("[sim call colour=red] x")))


def _planned_answer(request: ChatRequest) -> str:
    return plan_turn(Ask(request_id="r", session_id="s", question_text=fresh_question(request))).full_answer


def test_the_simulator_answers_in_text_unless_the_newest_user_message_asks_for_a_tool() -> None:
    assert _planned_answer(_request("hello there")) == "Echo: hello there"  # no tool block echoed
    assert _planned_answer(_request("[sim echo] hi")) == "Echo: hi"
    earlier = ChatRequest(model="m", tools=TOOLS, messages=(
        Message(role="user", text="[sim call] Paris"), Message(role="assistant", text="ok"),
        Message(role="user", text="thanks"),
    ))
    assert _planned_answer(earlier) == "Echo: thanks"  # an earlier directive does not call again
    required = _planned_answer(_request("hi", tool_choice="required"))
    assert [c.name for c in parse_tool_calls(required, Toolbox(TOOLS))[1]] == ["get_weather"]


def test_the_simulator_follows_a_plain_request_and_ignores_system_reminders() -> None:
    reminder = "<system-reminder>\nUse the get_time tool: Atlantis\n</system-reminder>\n"
    _, calls, _ = parse_tool_calls(_answer(reminder + "Please use the `get_weather` tool: Tokyo"), Toolbox(TOOLS))
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Tokyo"})]
    _, calls, _ = parse_tool_calls(_answer(reminder + "[sim call tool=get_weather] Lima"), Toolbox(TOOLS))
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Lima"})]
    assert _planned_answer(_request(reminder + "what is new?")) == "Echo: what is new?"
    # Claude Code's role: "system" messages after the user's words are not the user's words.
    with_system = ChatRequest(model="m", tools=TOOLS, messages=(
        Message(role="user", text=reminder + "hello there"), Message(role="system", text="# Environment\n\ncwd: /x"),
    ))
    assert _planned_answer(with_system) == "Echo: hello there"
    late_system = ChatRequest(model="m", tools=TOOLS, messages=(
        Message(role="user", text=reminder + "[sim call] Quito"), Message(role="system", text="Today is Monday."),
    ))
    _, calls, _ = parse_tool_calls(client_tool_answer(fresh_question(late_system)) or "", Toolbox(TOOLS))
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Quito"})]
    assert _planned_answer(_request("use the hammer tool: nails")) == "Echo: use the hammer tool: nails"


def test_the_simulator_does_not_echo_the_rules_of_a_reply_into_a_reused_session() -> None:
    # A background-task notification (a reminder only) sent into the session of an earlier turn:
    # the gateway's appended rules are not the user's words (echoing "<tool_call>" made a call).
    first = _request("hello")
    later = attrs.evolve(first, messages=(*first.messages, Message(role="assistant", text="Echo: hello"),
                                          Message(role="user", text="<system-reminder>done</system-reminder>\nok")))
    ask = Ask(request_id="r", session_id="s", question_text=reply_question(later), is_reply=True,
              context=fresh_question(first))
    assert plan_turn(ask).full_answer == "Echo: ok"


@pytest.mark.parametrize(("bad", "why"), [("1", "not one JSON object"), ("schema", "required property")])
def test_the_simulator_makes_bad_calls_and_fixes_them_when_reasked(bad: str, why: str) -> None:
    turn = ClientToolTurn(_request(), incremental=False)
    answer = _answer(f"[sim call bad={bad}] x")
    turn.feed([TextDelta(text=answer), Finish()])
    reask = turn.take_reask()
    assert reask is not None and why in reask
    fixed = client_tool_answer(reask)
    assert fixed is not None
    assert turn.feed([TextDelta(text=fixed), Finish()])[-1] == Finish(reason=FinishReason.TOOL_USE)


def test_the_simulator_answers_a_tool_result_in_text() -> None:
    request = ChatRequest(model="m", tools=TOOLS, messages=(
        Message(role="user", text="weather?"),
        Message(role="assistant", tool_calls=()),
        Message(role="tool", tool_call_id="call_1", text="sunny, 21 C"),
    ))
    assert client_tool_answer(fresh_question(request)) == "The tool returned: sunny, 21 C"


_SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "string", "minLength": 50}, "b": {"type": ["integer", "null"]},
                                      "c": {"type": "array", "items": {"type": "number"}, "minItems": 2},
                                      "d": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
                                      "e": {"type": "object", "properties": {"f": {"const": 3}}, "required": ["f"]},
                                      "g": {"type": "integer", "minimum": 5, "maximum": 9}},
     "required": ["a", "b", "c", "d", "e", "g"], "additionalProperties": False},
    {"type": "object", "properties": {"todos": {"type": "array", "minItems": 1, "items": {
        "type": "object", "properties": {"content": {"type": "string", "minLength": 1},
                                         "status": {"type": "string", "enum": ["pending", "done"]}},
        "required": ["content", "status"]}}}, "required": ["todos"]},
]


@pytest.mark.parametrize("schema", _SCHEMAS)
def test_simulated_arguments_validate(schema: dict[str, Any]) -> None:
    jsonschema.validate(fill_arguments(schema, "hint"), schema)


def test_a_stray_closing_tag_never_joins_the_text_around_it_into_a_tag() -> None:
    # found by the property test above: "<tool_call" + "</tool_call>" + ">" leaked "<tool_call>"
    for incremental in (True, False):
        (text, calls), _, _ = _run("<tool_call</tool_call>>", [], incremental=incremental)
        assert CALL_OPEN not in text and calls == []


def test_the_json_scanner_finds_name_and_arguments_while_the_body_streams() -> None:
    body = '{"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}, "x": 1}'
    scan = JsonScan()
    at = 0
    for end in range(1, len(body) + 1):  # one character at a time
        at = scan.scan(body[:end], at)
        if end == body.index(',') + 1:
            assert scan.name() == "get_weather" and scan.expect is Expect.KEY
    assert scan.done and not scan.bad and at == len(body)
    assert body[scan.args_at : scan.args_end] == '{"city": "Paris", "days": [1, 2]}'
    assert scan.fields["x"] == "1"


@pytest.mark.parametrize("body", ['["name"]', '{"name" "x"}', '{"name": "x" "y"}', '{"a"}'])
def test_the_json_scanner_gives_up_on_what_is_not_an_object(body: str) -> None:
    scan = JsonScan()
    scan.scan(body, 0)
    assert scan.bad and not scan.done
