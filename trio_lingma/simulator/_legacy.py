"""The legacy "cosy / LSP4J" dialect (lingma-protocol.md §2, §3A, §4.2, §6).

Methods are looked up in one explicit table; an unknown method gets -32601 "unknown method: X"
and the binary's log line. Unknown notifications (``initialized`` included, §2.1) are only
logged. ``chat/ask`` is answered at once and its turn streams afterwards in the same task.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ..protocol.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, Notification, Request
from ._catalogue import auth_status, initialize_result, is_reasoning_model, model_catalogue
from ._connection import Connection
from ._dialect import Reply, RpcFailure
from ._plan import Ask, plan_turn
from ._runtime import Simulator
from ._state import AskRecord, ChatRecord
from ._turn import run_turn

__all__ = ["LegacyDialect"]

_Handler = Callable[[Connection, dict[str, Any]], Reply]


class LegacyDialect:
    """Answers the legacy method set on behalf of one :class:`Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._methods: dict[str, _Handler] = {
            "initialize": _constant(initialize_result),
            "auth/status": _constant(lambda: auth_status(self._sim.auth_status)),
            "config/queryModels": _constant(model_catalogue),
            "ping": _constant(lambda: {"success": True}),
            "shutdown": self._shutdown,
            "chat/ask": self._chat_ask,
            "chat/stop": self._chat_stop,
            "chat/listAllSessions": self._list_sessions,
            "chat/getSessionById": self._get_session,
            "chat/deleteSessionById": self._delete_session,
            "chat/clearAllSessions": self._clear_sessions,
            "tool/invokeResult": self._tool_invoke_result,
            "sim/stats": self._stats,
        }

    def __repr__(self) -> str:
        return f"<LegacyDialect methods={len(self._methods)}>"

    def handle_request(self, conn: Connection, request: Request) -> Reply:
        handler = self._methods.get(request.method)
        if handler is None:
            self._log_unknown(request.method, is_request=True)
            raise RpcFailure(METHOD_NOT_FOUND, f"unknown method: {request.method}")
        return handler(conn, self._checked_params(request.params))

    def _checked_params(self, raw: Any) -> dict[str, Any]:
        """The params object; with ``strict_params`` anything else fails as the Go runtime's
        decoder does (OC: ``json: cannot unmarshal array into Go value of type struct {}``)."""
        if self._sim.profile.strict_params and not isinstance(raw, dict):
            raise RpcFailure(INVALID_PARAMS, go_decode_error(raw))
        return _params(raw)

    def handle_notification(self, conn: Connection, note: Notification) -> None:
        if note.method == "exit":
            self._sim.request_exit()
        else:
            self._log_unknown(note.method, is_request=False)

    def _log_unknown(self, method: str, *, is_request: bool) -> None:
        is_req = "true" if is_request else "false"
        self._sim.log.warn(f"err occur in {method}, isReq: {is_req}, err: unknown method: {method}")

    # -- handlers ---------------------------------------------------------------------

    def _shutdown(self, conn: Connection, params: dict[str, Any]) -> Reply:
        self._sim.log.info("shutdown requested")
        return Reply(None)

    def _chat_ask(self, conn: Connection, params: dict[str, Any]) -> Reply:
        ask = _ask_from(params)
        if ask.is_reply:
            ask = attrs.evolve(ask, context=self._sim.state.first_question(ask.session_id))
        plan = plan_turn(ask)
        state = self._sim.state
        state.record_ask(_ask_record(ask))
        record = ChatRecord(
            request_id=ask.request_id,
            question=ask.question_text,
            answer=plan.full_answer,
            timestamp_ms=ask.now_ms,
        )
        turns = state.add_turn(ask.session_id, record)
        self._sim.log.info(
            f"doAsk params.SessionType: chat, ChatMode: {ask.mode or 'chat'}, "
            f"requestId {ask.request_id}, sessionId {ask.session_id}, model {ask.model!r}, "
            f"scenario {plan.scenario.name}, turn {turns}"
        )
        scope = self._sim.open_turn(ask.request_id)
        result = {"requestId": ask.request_id, "isSuccess": True, "status": "ok"}
        then = functools.partial(run_turn, conn, self._sim, plan, scope)
        return Reply({**result, "errorMessage": ""}, then=then)

    def _chat_stop(self, conn: Connection, params: dict[str, Any]) -> Reply:
        request_id = str(params.get("requestId", ""))
        self._sim.state.record_stop(request_id)
        running = self._sim.stop_turn(request_id)
        self._sim.log.info(f"chat/stop requestId {request_id} running={running}")
        return Reply({})

    def _list_sessions(self, conn: Connection, params: dict[str, Any]) -> Reply:
        return Reply(self._sim.state.list_sessions())

    def _get_session(self, conn: Connection, params: dict[str, Any]) -> Reply:
        return Reply(self._sim.state.get_session(_session_id(params)))

    def _delete_session(self, conn: Connection, params: dict[str, Any]) -> Reply:
        session_id = _session_id(params)
        existed = self._sim.state.delete_session(session_id)
        self._sim.log.info(f"delete session {session_id} existed={existed}")
        return Reply(None)

    def _clear_sessions(self, conn: Connection, params: dict[str, Any]) -> Reply:
        self._sim.state.clear_sessions()
        return Reply(None)

    def _tool_invoke_result(self, conn: Connection, params: dict[str, Any]) -> Reply:
        tool_call_id = str(params.get("toolCallId", ""))
        if not self._sim.deliver_tool_result(tool_call_id, params):
            self._sim.log.warn(f"tool/invokeResult for unknown toolCallId {tool_call_id!r}")
        # errorCode must be null, not "" (pitfall 14).
        return Reply({"errorCode": None, "errorMessage": None})

    def _stats(self, conn: Connection, params: dict[str, Any]) -> Reply:
        return Reply(self._sim.state.stats())


def _constant(make: Callable[[], Any]) -> _Handler:
    def handler(conn: Connection, params: dict[str, Any]) -> Reply:
        return Reply(make())

    return handler


def go_decode_error(raw: Any) -> str:
    """What Go's ``encoding/json`` says when ``raw`` is decoded into a struct."""
    if raw is None:
        return "unexpected end of JSON input"
    kind = ("array" if isinstance(raw, list) else "string" if isinstance(raw, str)
            else "bool" if isinstance(raw, bool) else "number")
    return f"json: cannot unmarshal {kind} into Go value of type struct {{}}"


def _params(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RpcFailure(INVALID_PARAMS, "params must be an object")
    return raw


def _session_id(params: dict[str, Any]) -> str:
    return str(params.get("sessionId") or params.get("id") or "")


def _ask_from(params: dict[str, Any]) -> Ask:
    """Validate a ``ChatAskParam``; an empty sessionId gets a fresh uuid (§3A open question)."""
    question = params.get("questionText")
    if not isinstance(question, str):
        raise RpcFailure(INVALID_PARAMS, "questionText must be a string")
    model = _model_key(params)
    return Ask(
        request_id=str(params.get("requestId") or uuid.uuid4().hex),
        session_id=str(params.get("sessionId") or uuid.uuid4()),
        question_text=question,
        is_reply=bool(params.get("isReply", False)),
        model=model,
        mode=str(params.get("mode") or ""),
        reasoning_model=is_reasoning_model(model),
        now_ms=int(time.time() * 1000),
    )


def _model_key(params: dict[str, Any]) -> str:
    """``extra.modelConfig.key``, else the BYOK ``customModel.model`` (§5 "Choosing a model")."""
    extra = params.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("modelConfig"), dict):
        return str(extra["modelConfig"].get("key") or "")
    custom = params.get("customModel")
    if isinstance(custom, dict):
        return str(custom.get("model") or "")
    return ""


def _ask_record(ask: Ask) -> AskRecord:
    return AskRecord(
        request_id=ask.request_id,
        session_id=ask.session_id,
        question_text=ask.question_text,
        is_reply=ask.is_reply,
        model=ask.model,
        mode=ask.mode,
    )
