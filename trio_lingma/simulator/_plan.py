"""Plan a legacy ``chat/ask`` turn: the exact sequence of pushes a scenario produces.

Theory of operation
-------------------
A turn is planned up front as a tuple of steps, so the whole protocol behaviour of a scenario
can be read (and tested) without sockets. The executor (``_turn.py``) only carries the steps
out. The order follows the live capture and Clawith's emulation (lingma-protocol.md §3A,
§8): ``chat/process_step_callback(step_start)`` → ``session/title/update`` → optional
``chat/think`` → ``chat/answer``* (with an empty fragment, pitfall 5) →
``chat/process_step_callback(step_end)`` → ``chat/finish``, plus the §4.2 tool-card sequence.

Only what depends on the client's replies (the tool round trip) is left to the executor, as one
:class:`InvokeTools` step; its follow-up push is still built here (:func:`tool_result_sync`).
``full_answer`` is the concatenation of every ``chat/answer`` text of the plan (a bad
directive, which sends no answer, carries its error message there instead).
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._client_tools import client_tool_answer, scenario_text
from ._scenario import Directive, DirectiveError, Scenario, parse_question
from ._structured import structured_answer

__all__ = [
    "Ask",
    "Crash",
    "Hang",
    "InvokeTools",
    "Notify",
    "Pause",
    "Push",
    "Step",
    "ToolCall",
    "TurnPlan",
    "answer_pieces",
    "cancelled_finish",
    "plan_turn",
    "tool_invoke",
    "tool_result_sync",
]

CHUNK_SIZE = 8
MAX_PIECES = 512


@attrs.frozen(kw_only=True)
class Ask:
    """What the planner needs from a ``chat/ask`` (sessionId already resolved)."""

    request_id: str
    session_id: str
    question_text: str
    is_reply: bool = False
    model: str = ""
    mode: str = ""
    reasoning_model: bool = False
    project_path: str = "/project"
    now_ms: int = 0
    #: The session's first question (a reply's context: the model "remembers" its session).
    context: str = ""


@attrs.frozen
class Push:
    """A server→client request (fresh id; the client must answer it)."""

    method: str
    params: dict[str, Any]


@attrs.frozen
class Notify:
    """A server→client notification (no id)."""

    method: str
    params: dict[str, Any]


@attrs.frozen
class Pause:
    seconds: float


@attrs.frozen
class Crash:
    """The process dies abruptly (os._exit(1)), or in-process the connection drops."""


@attrs.frozen
class Hang:
    """Send nothing more for this request until ``chat/stop``."""


@attrs.frozen(kw_only=True)
class ToolCall:
    tool_call_id: str
    name: str
    parameters: dict[str, Any]
    fail: bool = False


@attrs.frozen
class InvokeTools:
    """Concurrently: ``tool/invoke`` each call, await ack + ``tool/invokeResult``, sync result."""

    calls: tuple[ToolCall, ...]


Step = Push | Notify | Pause | Crash | Hang | InvokeTools


@attrs.frozen(kw_only=True)
class TurnPlan:
    ask: Ask
    scenario: Scenario
    steps: tuple[Step, ...]
    full_answer: str
    withhold_until_acked: bool = False  # "unanswered": each push waits for the previous ack


def answer_pieces(text: str, size: int = CHUNK_SIZE) -> list[str]:
    """Split an answer into pieces with an empty fragment after the first.

    Pieces are ``size`` characters, longer when that would make more than :data:`MAX_PIECES`:
    a real model streams a 100 KB echo of an agent client's prompt at token pace, while the
    simulator has no pace, and 16,000 eight-character pushes would only test the host's CPU.
    ``[sim long chunks=N]`` is the way to ask for many pushes.
    """
    size = max(size, -(-len(text) // MAX_PIECES))
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    return [pieces[0], "", *pieces[1:]]


def plan_turn(ask: Ask) -> TurnPlan:
    """Parse the directive in ``ask.question_text`` and plan the whole turn."""
    try:
        answer = client_tool_answer(ask.question_text, context=ask.context)  # using the client's tools
        answer = answer if answer is not None else structured_answer(ask.question_text)  # JSON output
        if answer is not None:
            return _plan_answer(ask, answer)
        directive = parse_question(scenario_text(ask.question_text, context=ask.context))
    except DirectiveError as exc:
        return _plan_bad_directive(ask, str(exc))
    planner = _PLANNERS[directive.scenario.name]
    return planner(ask, directive)


# -- pushes -----------------------------------------------------------------------------


def _ids(ask: Ask) -> dict[str, Any]:
    return {"requestId": ask.request_id, "sessionId": ask.session_id}


def _step(ask: Ask, step: str, status: str, description: str) -> Push:
    params = {**_ids(ask), "step": step, "description": description, "status": status}
    return Push("chat/process_step_callback", {**params, "result": None, "message": ""})


def _title(ask: Ask, text: str) -> Push:
    title = text.splitlines()[0][:40] if text else "New chat"
    return Push("session/title/update", {"sessionId": ask.session_id, "sessionTitle": title})


def _answer(ask: Ask, text: str) -> Push:
    return Push(
        "chat/answer",
        {
            **_ids(ask),
            "text": text,
            "overwrite": False,
            "isFiltered": False,
            "timestamp": ask.now_ms,
            "extra": {"sessionType": "chat"},
        },
    )


def _think(ask: Ask, text: str, step: str) -> Push:
    params = {**_ids(ask), "text": text, "step": step, "timestamp": ask.now_ms, "extra": {}}
    return Push("chat/think", params)


def _finish(ask: Ask, reason: str, status_code: int, full_answer: str) -> Push:
    params = {**_ids(ask), "reason": reason, "statusCode": status_code}
    return Push("chat/finish", {**params, "fullAnswer": full_answer, "extra": None})


def cancelled_finish(plan: TurnPlan, sent_answer: str) -> Push:
    """The ``chat/finish`` a turn ends with after ``chat/stop`` (CW: 200 + "cancelled")."""
    return _finish(plan.ask, "cancelled", 200, sent_answer)


def _paced(steps: list[Step], delay: float) -> list[Step]:
    """Insert a pause after every push when the scenario asks for a delay."""
    if delay <= 0:
        return steps
    out: list[Step] = []
    for step in steps:
        out += [step, Pause(delay)]
    return out


def _opening(ask: Ask, text: str) -> list[Step]:
    return [_step(ask, "step_start", "doing", "Generating answer"), _title(ask, text)]


def _closing(ask: Ask, full_answer: str) -> list[Step]:
    return [
        _step(ask, "step_end", "done", "Answer generated"),
        _finish(ask, "success", 200, full_answer),
    ]


def _thinking(ask: Ask, text: str) -> list[Step]:
    pieces = [p for p in answer_pieces(f"Thinking about: {text}") if p]
    deltas: list[Step] = [_think(ask, p, "start") for p in pieces]
    return [_think(ask, "", "start"), *deltas, _think(ask, "", "done")]


# -- scenarios ----------------------------------------------------------------------------


def _echo(ask: Ask, directive: Directive, *, think: bool = False) -> TurnPlan:
    answer = f"Echo: {directive.text}"
    thinking = _thinking(ask, directive.text) if think or ask.reasoning_model else []
    body = thinking + [_answer(ask, p) for p in answer_pieces(answer)]
    steps = _opening(ask, directive.text) + _paced(body, directive.scenario.delay)
    return _plan(ask, directive, steps + _closing(ask, answer), answer)


def _plan_answer(ask: Ask, answer: str) -> TurnPlan:
    """A plain answer given as it is (simulator/_client_tools.py decides it)."""
    body: list[Step] = [_answer(ask, p) for p in answer_pieces(answer)]
    directive = Directive(scenario=Scenario(name="call"), text=answer)
    return _plan(ask, directive, _opening(ask, answer) + body + _closing(ask, answer), answer)


def _plan(
    ask: Ask, directive: Directive, steps: list[Step], answer: str, withhold: bool = False
) -> TurnPlan:
    return TurnPlan(
        ask=ask,
        scenario=directive.scenario,
        steps=tuple(steps),
        full_answer=answer,
        withhold_until_acked=withhold,
    )


def _plan_think(ask: Ask, directive: Directive) -> TurnPlan:
    return _echo(ask, directive, think=True)


def _plan_long(ask: Ask, directive: Directive) -> TurnPlan:
    pieces = [f"chunk {i} " for i in range(directive.scenario.chunks)]
    body: list[Step] = [_answer(ask, p) for p in pieces]
    answer = "".join(pieces)
    steps = _opening(ask, directive.text) + _paced(body, directive.scenario.delay)
    return _plan(ask, directive, steps + _closing(ask, answer), answer)


def _partial(ask: Ask, directive: Directive) -> tuple[list[Step], str]:
    """The first ``after`` pushes of the echo answer (error/crash/hang prefixes)."""
    pieces = answer_pieces(f"Echo: {directive.text}")[: directive.scenario.after]
    body: list[Step] = [_answer(ask, p) for p in pieces]
    steps = _opening(ask, directive.text) + _paced(body, directive.scenario.delay)
    return steps, "".join(pieces)


def _plan_error(ask: Ask, directive: Directive) -> TurnPlan:
    steps, answer = _partial(ask, directive)
    status = directive.scenario.status_code
    steps += [
        _step(ask, "step_end", "error", f"simulated error {status}"),
        _finish(ask, "error", status, answer),
    ]
    return _plan(ask, directive, steps, answer)


def _plan_crash(ask: Ask, directive: Directive) -> TurnPlan:
    steps, answer = _partial(ask, directive)
    return _plan(ask, directive, [*steps, Crash()], answer)


def _plan_hang(ask: Ask, directive: Directive) -> TurnPlan:
    steps, answer = _partial(ask, directive)
    return _plan(ask, directive, [*steps, Hang()], answer)


def _plan_unanswered(ask: Ask, directive: Directive) -> TurnPlan:
    return attrs.evolve(_echo(ask, directive), withhold_until_acked=True)


def _plan_stray(ask: Ask, directive: Directive) -> TurnPlan:
    answer = f"Echo: {directive.text}"
    body: list[Step] = [_answer(ask, p) for p in answer_pieces(answer)]
    middle = len(body) // 2
    body[middle:middle] = [
        Push("workspace/configuration", {"items": [{"section": "lingma"}]}),
        Notify("window/logMessage", {"type": 3, "message": "simulator: stray log message"}),
    ]
    steps = _opening(ask, directive.text) + _paced(body, directive.scenario.delay)
    return _plan(ask, directive, steps + _closing(ask, answer), answer)


def _tool_marker(call: ToolCall) -> str:
    return f"```toolCall::{call.name}::{call.tool_call_id}::INIT\n```"


def _tool_sync(
    ask: Ask, call: ToolCall, status: str, results: list[dict[str, Any]], error: str = ""
) -> Push:
    params = {
        **_ids(ask),
        "projectPath": ask.project_path,
        "toolCallId": call.tool_call_id,
        "toolCallStatus": status,
        "parameters": call.parameters,
        "results": results,
        "errorCode": "tool_error" if error else "",
        "errorMsg": error,
    }
    return Push("tool/call/sync", params)


def tool_invoke(plan: TurnPlan, call: ToolCall) -> Push:
    """``tool/invoke``: reuses the chat/ask requestId (pitfall 14); async, so acked first."""
    params: dict[str, Any] = {
        "requestId": plan.ask.request_id,
        "toolCallId": call.tool_call_id,
        "name": call.name,
        "parameters": call.parameters,
        "async": True,
    }
    return Push("tool/invoke", params)


def tool_result_sync(plan: TurnPlan, call: ToolCall, result: dict[str, Any] | None) -> Push:
    """The FINISHED/ERROR sync after the client's ``tool/invokeResult`` (None: none came)."""
    if result is None:
        return _tool_sync(plan.ask, call, "ERROR", [], "no tool/invokeResult from client")
    if call.fail:
        return _tool_sync(plan.ask, call, "ERROR", [], "simulated tool failure")
    if result.get("success") is False:
        message = str(result.get("errorMessage") or "tool failed on the client")
        return _tool_sync(plan.ask, call, "ERROR", [], message)
    content = result.get("result")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return _tool_sync(plan.ask, call, "FINISHED", [{"content": text}])


def _request_finished(ask: Ask) -> Push:
    params = {**_ids(ask), "projectPath": ask.project_path, "toolCallId": ""}
    params.update(toolCallStatus="REQUEST_FINISHED", parameters={}, results=[])
    return Push("tool/call/sync", {**params, "errorCode": "", "errorMsg": ""})


def _plan_tools(ask: Ask, directive: Directive) -> TurnPlan:
    calls = tuple(
        ToolCall(
            tool_call_id=f"sim-{ask.request_id}-{i}",
            name="read_file",
            parameters={"file_path": f"{ask.project_path}/{'a' if i == 0 else f'a{i}'}.py"},
            fail=directive.scenario.tool_error,
        )
        for i in range(directive.scenario.calls)
    )
    markers = [_tool_marker(call) for call in calls]
    cards: list[Step] = []
    for call in calls:
        cards += [_tool_sync(ask, call, "PENDING", []), _tool_sync(ask, call, "RUNNING", [])]
    echo = f"Echo: {directive.text}"
    before: list[Step] = [_answer(ask, m) for m in markers] + cards
    after: list[Step] = [_answer(ask, p) for p in answer_pieces(echo)]
    answer = "".join(markers) + echo
    delay = directive.scenario.delay
    steps = _opening(ask, directive.text) + _paced(before, delay) + [InvokeTools(calls)]
    steps += _paced(after, delay) + _closing(ask, answer) + [_request_finished(ask)]
    return _plan(ask, directive, steps, answer)


def _plan_bad_directive(ask: Ask, message: str) -> TurnPlan:
    steps: list[Step] = [
        _step(ask, "step_start", "doing", "Generating answer"),
        _step(ask, "step_end", "error", message),
        _finish(ask, "error", 400, message),
    ]
    scenario = Scenario(name="invalid")
    return TurnPlan(ask=ask, scenario=scenario, steps=tuple(steps), full_answer=message)


_PLANNERS = {
    "echo": _echo,
    "think": _plan_think,
    "tools": _plan_tools,
    "slow": _echo,
    "long": _plan_long,
    "error": _plan_error,
    "crash": _plan_crash,
    "hang": _plan_hang,
    "unanswered": _plan_unanswered,
    "stray": _plan_stray,
}
