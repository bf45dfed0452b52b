"""The ACP-style ``session/*`` dialect of the simulator (lingma-protocol.md §3B, §8 "Scripted ACP turn").

Theory of operation
-------------------
It reuses everything of the legacy dialect that the ACP runtimes share (``auth/status``,
``config/queryModels``, ``ping``, ``chat/stop``, ``chat/deleteSessionById`` with ``sessionId`` or
``id``, ``sim/stats``, ``exit``) and the legacy turn *planner*: a ``session/prompt`` is planned
as if it were a ``chat/ask`` and the plan is translated step by step (:func:`acp_steps`):

* ``chat/answer`` → ``session/update`` ``agent_message_chunk`` (the empty fragment included);
  ``chat/think`` with text → ``agent_thought_chunk``;
* ``chat/finish`` → ``notification`` ``context_usage`` then ``notification`` ``chat_finish``
  (``data.reason``; ``data.statusCode`` only when it is not 200);
* tool steps become the tool updates of QoderCN session replays (§11, WE): the ``PENDING``
  card a ``tool_call`` ``{toolCallId, title, kind, rawInput}`` with ``_meta``
  ``ai-coding/tool-name``/``tool-kind``, ``RUNNING`` a ``tool_call_update`` ``in_progress``, and
  the tool round trip a ``tool_call_update`` ``completed`` (``rawOutput: [{content}]``) or
  ``failed`` (``ai-coding/tool-call-error-message``): an ACP runtime runs its tools itself, so
  nothing is asked of the client; markers and ``REQUEST_FINISHED`` are dropped;
* everything else (step callbacks, stray requests, pauses, crash, hang) is kept as is.

A profile (``_profile.py``) can change this to what real runtimes were seen doing:
``session/prompt`` answered at once, step callbacks and ``snapshot/syncAll`` first,
``available_commands_update`` after ``session/new``, a ``plan`` update before an agent turn's
first tool, strict params, ``initialize`` versions.

Updates are notifications carrying ``_meta["ai-coding/request-id"]``. The ``session/prompt``
response is *deferred* until the turn is over: ``{"stopReason": "end_turn"}``, or
``"cancelled"`` after ``session/cancel`` / ``chat/stop`` (which also send a ``chat_finish``
with reason ``cancelled``). A crashed turn never answers.

:class:`VsCodeAcpDialect` is the VS Code extension's runtime (pitfall 6): it answers
``initialize`` and the model list, but ``session/new`` is -32601.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

import trio

from ..protocol.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Notification, Request
from ._catalogue import SERVER_VERSION, is_reasoning_model
from ._connection import Connection
from ._dialect import Reply, RpcFailure
from ._legacy import LegacyDialect, _ask_record
from ._plan import Ask, InvokeTools, Notify, Push, Step, ToolCall, TurnPlan, plan_turn
from ._profile import DEFAULT, Profile
from ._runtime import Simulator
from ._state import ChatRecord
from ._turn import _TurnRunner

__all__ = ["AcpDialect", "VsCodeAcpDialect", "acp_steps"]

META_REQUEST_ID = "ai-coding/request-id"
_TOOL_PUSHES = frozenset({"tool/call/sync", "tool/invoke"})


def _update(plan: TurnPlan, update: dict[str, Any]) -> Notify:
    params = {
        "sessionId": plan.ask.session_id,
        "_meta": {META_REQUEST_ID: plan.ask.request_id},
        "update": update,
    }
    return Notify("session/update", params)


def _chunk(plan: TurnPlan, kind: str, text: str) -> Notify:
    return _update(plan, {"sessionUpdate": kind, "content": {"type": "text", "text": text}})


def _notification(plan: TurnPlan, type_: str, data: dict[str, Any]) -> Notify:
    return _update(plan, {"sessionUpdate": "notification", "type": type_, "data": data})


def finish_steps(plan: TurnPlan, reason: str, status_code: int = 200, profile: Profile = DEFAULT) -> list[Step]:
    """``context_usage`` then ``chat_finish`` (statusCode only when it is not 200; a realistic
    runtime's ``fullAnswer`` is empty, OC)."""
    used = len(plan.ask.question_text) // 4 + len(plan.full_answer) // 4
    data: dict[str, Any] = {"reason": reason, "requestId": plan.ask.request_id}
    if status_code != 200:
        data["statusCode"] = status_code
    if profile.prompt_ack:
        data["fullAnswer"] = ""
    return [
        _notification(plan, "context_usage", {"usedTokens": used, "limitTokens": 131072}),
        _notification(plan, "chat_finish", data),
    ]


def _tool_meta(call: ToolCall) -> dict[str, Any]:
    return {"ai-coding/tool-name": call.name, "ai-coding/tool-kind": "read"}


def _tool_update(plan: TurnPlan, call: ToolCall, update: dict[str, Any], meta: dict[str, Any]) -> Notify:
    note = _update(plan, {"toolCallId": call.tool_call_id, **update})
    note.params["_meta"].update(meta)
    return note


def _tool_card(plan: TurnPlan, calls: dict[str, ToolCall], params: dict[str, Any]) -> list[Step]:
    call = calls.get(params.get("toolCallId") or "")
    if call is None:  # REQUEST_FINISHED and id-less cards
        return []
    if params["toolCallStatus"] == "PENDING":
        update = {"sessionUpdate": "tool_call", "title": f"{call.name} {call.parameters.get('file_path', '')}",
                  "kind": "read", "rawInput": call.parameters, "status": "pending"}
        return [_tool_update(plan, call, update, _tool_meta(call))]
    update = {"sessionUpdate": "tool_call_update", "status": "in_progress"}
    return [_tool_update(plan, call, update, _tool_meta(call))]


def _tool_end(plan: TurnPlan, call: ToolCall) -> Notify:
    """The runtime ran the tool itself: ``completed`` with its output, or ``failed``."""
    if call.fail:
        meta = {**_tool_meta(call), "ai-coding/tool-call-error-code": 500,
                "ai-coding/tool-call-error-message": "simulated tool failure"}
        return _tool_update(plan, call, {"sessionUpdate": "tool_call_update", "status": "failed"}, meta)
    output = [{"content": f"simulated contents of {call.parameters.get('file_path', '?')}"}]
    update = {"sessionUpdate": "tool_call_update", "status": "completed", "rawOutput": output}
    return _tool_update(plan, call, update, _tool_meta(call))


def _translate(plan: TurnPlan, calls: dict[str, ToolCall], step: Step, profile: Profile) -> list[Step]:
    match step:
        case Push(method="chat/answer", params=params):
            text = params["text"]
            return [] if text.startswith("```toolCall::") else [_chunk(plan, "agent_message_chunk", text)]
        case Push(method="chat/think", params=params):
            text = params["text"]
            return [_chunk(plan, "agent_thought_chunk", text)] if text else []
        case Push(method="chat/finish", params=params):
            return finish_steps(plan, params["reason"], params["statusCode"], profile)
        case Push(method="tool/call/sync", params=params):
            return _tool_card(plan, calls, params)
        case Push(method=method) if method in _TOOL_PUSHES:
            return []
        case InvokeTools(calls=invoked):
            return [_tool_end(plan, call) for call in invoked]
    return [step]


def acp_steps(plan: TurnPlan, profile: Profile = DEFAULT) -> tuple[Step, ...]:
    """The legacy plan of a turn, as the ACP runtime would stream it."""
    calls = {call.tool_call_id: call for step in plan.steps if isinstance(step, InvokeTools) for call in step.calls}
    steps = [out for step in plan.steps for out in _translate(plan, calls, step, profile)]
    if calls and profile.side_pushes:  # an agent turn publishes its plan before its first tool
        first = next(i for i, step in enumerate(steps) if "toolCallId" in getattr(step, "params", {}).get("update", {}))
        steps.insert(first, _plan_update(plan, len(calls)))
    return tuple(_steps_first(plan, steps) if profile.steps_first else steps)


def _plan_update(plan: TurnPlan, reads: int) -> Notify:
    """A ``plan`` update as in QoderCN session replays (WE): ``entries`` of content/status/priority."""
    entries = [{"content": f"read {reads} file(s)", "status": "in_progress", "priority": "high"},
               {"content": "answer", "status": "pending", "priority": "medium"}]
    return _update(plan, {"sessionUpdate": "plan", "entries": entries})


def _is_step(step: Step, name: str) -> bool:
    return isinstance(step, Push) and step.method == "chat/process_step_callback" and step.params["step"] == name


def _steps_first(plan: TurnPlan, steps: list[Step]) -> list[Step]:
    """OC's live order: ``step_start``, ``step_end``, ``snapshot/syncAll``, the title, then the answer."""
    ends = [step for step in steps if _is_step(step, "step_end")]
    rest = [step for step in steps if not _is_step(step, "step_end")]
    at = next((i + 1 for i, step in enumerate(rest) if _is_step(step, "step_start")), 0)
    sync = Notify("snapshot/syncAll", {"requestId": plan.ask.request_id, "sessionId": plan.ask.session_id})
    return [*rest[:at], *ends, sync, *rest[at:]]


class AcpDialect(LegacyDialect):
    """Answers the ACP method set (plus the legacy methods ACP runtimes share)."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self._sessions: dict[str, str] = {}  # session id → model key
        self._running: dict[str, str] = {}  # session id → request id of its running prompt
        for legacy_only in ("chat/ask", "tool/invokeResult"):
            del self._methods[legacy_only]
        self._methods.update({
            "initialize": self._initialize,
            "session/new": self._session_new,
            "session/set_model": self._set_model,
        })

    def __repr__(self) -> str:
        return f"<AcpDialect sessions={len(self._sessions)} running={len(self._running)}>"

    def handle_request(self, conn: Connection, request: Request) -> Reply:
        if request.method == "session/prompt":  # needs the JSON-RPC id to answer it later
            return self._prompt(conn, request.id, self._checked_params(request.params))
        return super().handle_request(conn, request)

    def handle_notification(self, conn: Connection, note: Notification) -> None:
        if note.method == "session/cancel":
            self._cancel(_params(note.params))
        else:
            super().handle_notification(conn, note)

    # -- handlers ---------------------------------------------------------------------

    def _initialize(self, conn: Connection, params: dict[str, Any]) -> Reply:
        profile = self._sim.profile
        version = params.get("protocolVersion")
        self._sim.log.info(f"initialize protocolVersion={version!r}")
        if version not in profile.protocol_versions:
            raise RpcFailure(INVALID_PARAMS, f"unsupported protocolVersion: {version!r}")
        return Reply({
            "protocolVersion": version,
            "agentCapabilities": {"loadSession": False, "promptCapabilities": {"image": True}},
            "authMethods": [],
            "serverInfo": {"name": profile.server_name, "version": profile.server_version or SERVER_VERSION},
        })

    def _session_new(self, conn: Connection, params: dict[str, Any]) -> Reply:
        session_id = str(uuid.uuid4())
        self._sessions[session_id] = ""
        self._sim.log.info(f"session/new cwd={params.get('cwd')!r} sessionId {session_id}")
        if not self._sim.profile.side_pushes:
            return Reply({"sessionId": session_id})
        commands = {"sessionId": session_id, "update": {"sessionUpdate": "available_commands_update",
                                                        "availableCommands": [{"name": "init"}]}}
        return Reply({"sessionId": session_id}, then=functools.partial(conn.notify, "session/update", commands))

    def _set_model(self, conn: Connection, params: dict[str, Any]) -> Reply:
        session_id = self._known_session(params)
        self._sessions[session_id] = str(params.get("modelId") or "")
        return Reply(None)

    def _prompt(self, conn: Connection, rpc_id: Any, params: dict[str, Any]) -> Reply:
        ask = self._ask_from(params)
        plan = plan_turn(ask)
        self._record(ask, plan)
        self._running[ask.session_id] = ask.request_id
        scope = self._sim.open_turn(ask.request_id)
        then = functools.partial(self._run_turn, conn, rpc_id, plan, scope)
        if self._sim.profile.prompt_ack:  # OC: "result was undefined", the answer streams after
            return Reply(None, then=then)
        return Reply(deferred=True, then=then)

    def _cancel(self, params: dict[str, Any]) -> None:
        meta = params.get("_meta")
        request_id = meta.get(META_REQUEST_ID) if isinstance(meta, dict) else None
        request_id = request_id or self._running.get(str(params.get("sessionId") or ""), "")
        self._sim.state.record_stop(str(request_id))
        running = self._sim.stop_turn(str(request_id))
        self._sim.log.info(f"session/cancel requestId {request_id} running={running}")

    def _delete_session(self, conn: Connection, params: dict[str, Any]) -> Reply:
        self._sessions.pop(str(params.get("sessionId") or params.get("id") or ""), None)
        return super()._delete_session(conn, params)

    # -- the turn -----------------------------------------------------------------------

    async def _run_turn(self, conn: Connection, rpc_id: Any, plan: TurnPlan, scope: trio.CancelScope) -> None:
        runner = _TurnRunner(conn, self._sim, plan)
        request_id = plan.ask.request_id
        profile = self._sim.profile
        try:
            with scope:
                for step in acp_steps(plan, profile):
                    await runner.execute(step)
            stop_reason = "end_turn"
            if scope.cancelled_caught:
                self._sim.log.info(f"chat stopped requestId: {request_id}")
                for step in finish_steps(plan, "cancelled", profile=profile):
                    await runner.execute(step)
                stop_reason = "cancelled"
            if not profile.prompt_ack:  # else it was answered at once
                await conn.respond(rpc_id, {"stopReason": stop_reason})
        finally:
            self._sim.close_turn(request_id, scope)
            if self._running.get(plan.ask.session_id) == request_id:
                del self._running[plan.ask.session_id]

    def _known_session(self, params: dict[str, Any]) -> str:
        session_id = str(params.get("sessionId") or "")
        if session_id not in self._sessions:
            raise RpcFailure(INVALID_PARAMS, f"session not found: {session_id!r}")
        return session_id

    def _ask_from(self, params: dict[str, Any]) -> Ask:
        session_id = self._known_session(params)
        raw_meta = params.get("_meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        model = str(meta.get("ai-coding/model") or self._sessions[session_id])
        if self._sim.profile.strict_params and not meta.get(META_REQUEST_ID):
            raise RpcFailure(INTERNAL_ERROR, "requestId is empty")  # OC, live
        return Ask(
            request_id=str(meta.get(META_REQUEST_ID) or uuid.uuid4().hex),
            session_id=session_id,
            question_text=_prompt_text(params.get("prompt")),
            is_reply=self._sim.state.get_session(session_id) is not None,
            model=model,
            mode=str(meta.get("ai-coding/mode") or ""),
            reasoning_model=is_reasoning_model(model),
            now_ms=int(time.time() * 1000),
            context=self._sim.state.first_question(session_id),
        )

    def _record(self, ask: Ask, plan: TurnPlan) -> None:
        state = self._sim.state
        state.record_ask(_ask_record(ask))
        record = ChatRecord(request_id=ask.request_id, question=ask.question_text,
                            answer=plan.full_answer, timestamp_ms=ask.now_ms)
        turns = state.add_turn(ask.session_id, record)
        self._sim.log.info(
            f"session/prompt requestId {ask.request_id}, sessionId {ask.session_id}, "
            f"model {ask.model!r}, mode {ask.mode!r}, scenario {plan.scenario.name}, turn {turns}"
        )


class VsCodeAcpDialect(AcpDialect):
    """The VS Code extension's runtime: models are listed, ``session/new`` is missing."""

    def _session_new(self, conn: Connection, params: dict[str, Any]) -> Reply:
        self._log_unknown("session/new", is_request=True)
        raise RpcFailure(METHOD_NOT_FOUND, "unknown method: session/new")


def _params(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RpcFailure(INVALID_PARAMS, "params must be an object")
    return raw


def _prompt_text(prompt: Any) -> str:
    """The text blocks of a ``session/prompt`` ``prompt`` list, joined."""
    if not isinstance(prompt, list):
        raise RpcFailure(INVALID_PARAMS, "prompt must be a list of content blocks")
    texts = [b["text"] for b in prompt if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return "\n".join(texts)
