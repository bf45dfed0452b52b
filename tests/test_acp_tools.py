"""ACP tool and plan updates (QoderCN session replays, lingma-protocol.md §11) become the same
tool events as the legacy dialect's, and TOOL_BRIDGE presents them alike — sans-IO."""

from __future__ import annotations

from typing import Any

import pytest

from trio_lingma.protocol import acp
from trio_lingma.protocol.agent_tools import UNKNOWN_TOOL, ToolBridge, ToolPresenter
from trio_lingma.protocol.events import (
    Event,
    Finish,
    PlanUpdate,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallResult,
    ToolCallStart,
)


def _update(update: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"_meta": {acp.META_REQUEST_ID: "R", **(meta or {})}, "sessionId": "S", "update": update}


def _feed(turn: acp.AcpTurn, *updates: dict[str, Any]) -> list[Event]:
    return [event for params in updates for event in turn.feed("session/update", params)]


READ = {"sessionUpdate": "tool_call", "toolCallId": "T1", "title": "Read a.py", "kind": "read",
        "rawInput": {"file_path": "/p/a.py"}}
READ_META = {"ai-coding/tool-name": "read_file", "ai-coding/tool-kind": "read"}


def test_a_tool_call_and_its_update_are_the_legacy_tool_events() -> None:
    turn = acp.AcpTurn("R", "S")
    done = {"sessionUpdate": "tool_call_update", "toolCallId": "T1", "status": "completed",
            "rawOutput": [{"content": "print('hi')"}]}
    events = _feed(turn, _update(READ, READ_META),
                   _update({"sessionUpdate": "tool_call_update", "toolCallId": "T1", "status": "in_progress"}),
                   _update(done), _update({"sessionUpdate": "agent_message_chunk", "content": {"text": "ok"}}))
    assert events == [
        ToolCallStart(id="T1", name="read_file", executed=True),
        ToolCallArgsDelta(id="T1", json='{"file_path":"/p/a.py"}'),
        ToolCallResult(id="T1", content="print('hi')", is_error=False),
        TextDelta(text="ok"),
    ]


@pytest.mark.parametrize(
    ("update", "meta", "content"),
    [
        ({"status": "failed"}, {"ai-coding/tool-call-error-message": "no such file"}, "no such file"),
        ({"status": "failed"}, {"ai-coding/tool-call-error-code": 404}, "error code 404"),
        ({"status": "failed", "rawOutput": "denied"}, {}, "denied"),
        ({"status": "cancelled"}, {}, "cancelled"),
        ({"status": "completed"}, {"ai-coding/tool-call-error-message": "partial"}, "partial"),
    ],
)
def test_failed_tool_calls_are_error_results(update: dict[str, Any], meta: dict[str, Any], content: str) -> None:
    turn = acp.AcpTurn("R")
    ended = {"sessionUpdate": "tool_call_update", "toolCallId": "T1", **update}
    events = _feed(turn, _update(READ, READ_META), _update(ended, meta))
    assert events[-1] == ToolCallResult(id="T1", content=content, is_error=True)


def test_names_and_arguments_from_wherever_they_come() -> None:
    turn = acp.AcpTurn("R")
    # no tool-name meta: the title; a JSON string rawInput is parsed; the meta may sit on the update
    call = {"sessionUpdate": "tool_call", "toolCallId": "T2", "title": "grep", "rawInput": '{"q": "x"}',
            "_meta": {"ai-coding/parent-tool-call-id": "T1"}}
    assert _feed(turn, _update(call))[:2] == [ToolCallStart(id="T2", name="grep"),
                                             ToolCallArgsDelta(id="T2", json='{"q":"x"}')]
    bare = {"sessionUpdate": "tool_call", "toolCallId": "T3", "kind": "execute", "rawInput": "ls -la"}
    assert _feed(turn, _update(bare))[1] == ToolCallArgsDelta(id="T3", json='{"input":"ls -la"}')


def test_a_one_shot_report_with_acp_content_blocks() -> None:
    turn = acp.AcpTurn("R")
    call = {**READ, "status": "completed",
            "content": [{"type": "content", "content": {"type": "text", "text": "body"}}]}
    assert _feed(turn, _update(call, READ_META))[-1] == ToolCallResult(id="T1", content="body")


def test_calls_without_a_name_or_arguments_are_flushed_at_chat_finish() -> None:
    turn = acp.AcpTurn("R")
    nameless = {"sessionUpdate": "tool_call_update", "toolCallId": "T9", "status": "completed", "rawOutput": {"n": 1}}
    assert _feed(turn, _update(nameless)) == []  # nothing to start it with yet
    finish = _update({"sessionUpdate": "notification", "type": "chat_finish", "data": {"reason": "success"}})
    assert _feed(turn, finish) == [ToolCallStart(id="T9", name=UNKNOWN_TOOL), ToolCallArgsDelta(id="T9", json="{}"),
                                   ToolCallResult(id="T9", content='{"n":1}'), Finish()]


@pytest.mark.parametrize("update", [
    {"sessionUpdate": "tool_call"}, {"sessionUpdate": "tool_call", "toolCallId": ""},
    {"sessionUpdate": "tool_call_update", "toolCallId": 5, "status": "completed"},
    {"sessionUpdate": "plan", "entries": "nope"},
])
def test_malformed_tool_updates_are_ignored(update: dict[str, Any]) -> None:
    assert _feed(acp.AcpTurn("R"), _update(update)) == []


PLAN = {"sessionUpdate": "plan", "entries": [{"content": "read a.py", "status": "completed", "priority": "high"},
                                             {"content": "fix it", "status": "pending"}, {"content": ""}]}


def test_plan_updates_are_text_only_when_tool_bridge_is_text() -> None:
    events = _feed(acp.AcpTurn("R"), _update(PLAN))
    assert events == [PlanUpdate(entries=(("read a.py", "completed"), ("fix it", "pending")))]
    assert ToolPresenter(ToolBridge.BRIDGE).feed(events) == []
    assert ToolPresenter(ToolBridge.OFF).feed(events) == []
    assert ToolPresenter(ToolBridge.TEXT).feed(events) == [
        TextDelta(text="[plan: read a.py (completed); fix it (pending)]\n")]


def test_acp_tool_calls_read_as_text_like_legacy_ones() -> None:
    turn = acp.AcpTurn("R")
    done = {"sessionUpdate": "tool_call_update", "toolCallId": "T1", "status": "completed", "rawOutput": "x"}
    text = ToolPresenter(ToolBridge.TEXT).feed(_feed(turn, _update(READ, READ_META), _update(done)))
    assert "".join(e.text for e in text if isinstance(e, TextDelta)) == (
        '[tool call read_file {"file_path":"/p/a.py"}]\n[tool result read_file: x]\n')
