"""Sans-IO pieces of Lingma's ACP-style ``session/*`` dialect (lingma-protocol.md §2.1, §3B, §5).

Theory of operation
-------------------
Desktop and QoderCN runtimes speak an ACP-like dialect: ``initialize {protocolVersion}`` (2
first, then 1, as QoderCN clients do; §11), ``session/new`` (the *runtime* assigns the session
id), ``session/set_model``, then ``session/prompt``. The answer streams as ``session/update``
notifications correlated by ``_meta["ai-coding/request-id"]`` (never by JSON-RPC id).

:class:`AcpTurn` turns one turn's updates into internal events:

* ``agent_message_chunk`` → :class:`TextDelta`, ``agent_thought_chunk`` → :class:`ThinkingDelta`;
* ``tool_call``/``tool_call_update`` → the legacy dialect's tool events, through the same
  :class:`~.agent_tools.ToolAssembler` (:mod:`.acp_tools`), so ``TOOL_BRIDGE`` works alike;
  ``plan`` → :class:`~.events.PlanUpdate` (a text line with ``TOOL_BRIDGE=text``, else dropped);
* ``notification`` ``context_usage`` → :class:`Usage` only when it carries explicit input and
  output counts (``usedTokens`` alone is the context window's fill, history included, so
  the gateway's own count stays);
* ``notification`` ``chat_finish`` → the terminal :class:`Finish` or :class:`StreamError`,
  chosen by ``data.reason`` (and ``data.statusCode`` when present, as in ``chat/finish``);
  ``data.fullAnswer`` is never used (it was empty on a real runtime, §11);
* **only ``chat_finish`` or a ``session/prompt`` result carrying a ``stopReason`` ends the
  turn** (:meth:`AcpTurn.prompt_done`). A real runtime answered ``session/prompt`` at once with
  an empty result while the answer was still streaming (OC, §11): such a result is an
  acknowledgement, and the turn goes on until ``chat_finish`` — bounded by the request's
  deadlines (``IDLE_TIMEOUT``, ``REQUEST_TIMEOUT``) if it never comes. ``stopReason`` values
  were never logged live, so the ACP standard ones are assumed, anything unknown is a normal end;
* everything else is not part of the answer and is ignored: ``chat/process_step_callback``
  (``step_start``/``step_end`` arrive *before* the answer chunks on a real runtime),
  ``snapshot/syncAll``, ``session/title/update``, ``available_commands_update``,
  ``user_message_chunk`` and unknown update kinds.

Nothing here does I/O; :mod:`trio_lingma.backend.acp` performs the calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeGuard

from . import acp_tools
from .agent_tools import ToolAssembler
from .events import ErrorKind, Event, Finish, FinishReason, StreamError, TextDelta, ThinkingDelta, Usage

__all__ = [
    "AcpTurn",
    "META_MODE",
    "META_MODEL",
    "META_REQUEST_ID",
    "PROTOCOL_VERSIONS",
    "cancel_params",
    "delete_session_params",
    "finish_event",
    "initialize_params",
    "new_session_params",
    "parse_session_id",
    "prompt_params",
    "set_model_params",
    "stop_reason_event",
    "update_request_id",
    "usage_from",
]

#: ``initialize`` versions, in the order they are tried (QoderCN clients send 2, then 1: WE).
PROTOCOL_VERSIONS = (2, 1)
META_REQUEST_ID = "ai-coding/request-id"
META_MODE = "ai-coding/mode"
META_MODEL = "ai-coding/model"

_SUCCESS = frozenset({"", "success", "succeeded", "stop", "end_turn", "finish", "finished", "done", "complete"})
_CANCELLED = frozenset({"cancelled", "canceled", "cancel", "stopped", "user_cancel", "abort", "aborted"})
_LENGTH = frozenset({"length", "max_tokens"})
_TIMEOUT = frozenset({"timeout", "timed_out"})


def initialize_params(*, client_version: str, now_ms: int, version: int = PROTOCOL_VERSIONS[0]) -> dict[str, Any]:
    """ACP-style ``initialize`` (LP/OC/WE); the result is not relied upon (§2.1)."""
    return {
        "protocolVersion": version,
        "clientCapabilities": {},
        "clientInfo": {"name": "trio-lingma", "version": client_version},
        "timestamp": now_ms,
    }


def new_session_params(cwd: str, *, now_ms: int) -> dict[str, Any]:
    """``session/new``: ``cwd`` is the instance's workdir (an absolute path)."""
    return {"cwd": str(Path(cwd).resolve()), "mcpServers": [], "_meta": {}, "timestamp": now_ms}


def parse_session_id(result: Any) -> str | None:
    """The id in a ``session/new`` result: ``sessionId``, or ``id`` as LP also accepts."""
    if isinstance(result, dict):
        for key in ("sessionId", "id"):
            value = result.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def set_model_params(session_id: str, model_key: str, *, now_ms: int) -> dict[str, Any]:
    return {
        "sessionId": session_id,
        "modelId": model_key,
        "timestamp": now_ms,
        "_meta": {META_MODEL: model_key},
    }


def prompt_params(
    *, session_id: str, request_id: str, question: str, model_key: str, mode: str, shell: str = "bash"
) -> dict[str, Any]:
    """``session/prompt`` with the request id every update of this turn will carry."""
    return {
        "sessionId": session_id,
        "prompt": [{"type": "text", "text": question}],
        "contextParams": [],
        "_meta": {
            META_REQUEST_ID: request_id,
            META_MODE: mode,
            META_MODEL: model_key,
            "ai-coding/shell-type": shell,
            "ai-coding/current-file-path": "",
            "ai-coding/enabled-mcp-servers": [],
        },
    }


def cancel_params(session_id: str, request_id: str) -> dict[str, Any]:
    """``session/cancel`` (ACP standard; no proxy confirmed it, §3B.6)."""
    return {"sessionId": session_id, "_meta": {META_REQUEST_ID: request_id}}


def delete_session_params(session_id: str, *, legacy_key: bool = False) -> dict[str, Any]:
    """``chat/deleteSessionById``: ``{sessionId}``, or ``{id}`` for LP's retry (§3B.5)."""
    return {"id": session_id} if legacy_key else {"sessionId": session_id}


def update_request_id(params: Any) -> str | None:
    """The ``_meta["ai-coding/request-id"]`` of an update, if any."""
    if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
        rid = params["_meta"].get(META_REQUEST_ID)
        return rid if isinstance(rid, str) and rid else None
    return None


class AcpTurn:
    """Turns the ``session/update`` notifications of one prompt into internal events."""

    def __init__(self, request_id: str, session_id: str | None = None) -> None:
        self.request_id = request_id
        self.session_id = session_id
        self.finished = False
        #: The ``session/prompt`` response came as an acknowledgement (no ``stopReason``).
        self.acknowledged = False
        self.context_usage: dict[str, Any] | None = None
        self.tools = ToolAssembler()

    def __repr__(self) -> str:
        return f"<AcpTurn {self.request_id} session={self.session_id} finished={self.finished}>"

    def feed(self, method: str, params: Any) -> list[Event]:
        """Events for one push routed to this turn (other methods, e.g. step callbacks: none)."""
        if self.finished or method != "session/update" or not isinstance(params, dict):
            return []
        update = params.get("update")
        if not isinstance(update, dict):
            return []
        match update.get("sessionUpdate"):
            case "agent_message_chunk":
                text = _content_text(update.get("content"))
                return [TextDelta(text=text)] if text else []
            case "agent_thought_chunk":
                text = _content_text(update.get("content"))
                return [ThinkingDelta(text=text)] if text else []
            case "tool_call":
                return acp_tools.tool_call(self.tools, update, acp_tools.update_meta(params, update))
            case "tool_call_update":
                return acp_tools.tool_call_update(self.tools, update, acp_tools.update_meta(params, update))
            case "plan":
                return acp_tools.plan_update(update)
            case "notification":
                return self._notification(update)
        return []

    def prompt_done(self, result: Any) -> list[Event]:
        """The ``session/prompt`` response: the end if it carries a ``stopReason`` and
        ``chat_finish`` did not come first; an acknowledgement (nothing) otherwise."""
        reason = result.get("stopReason") if isinstance(result, dict) else None
        if self.finished:
            return []
        if not isinstance(reason, str) or not reason:
            self.acknowledged = True
            return []
        self.finished = True
        return [*self.tools.finish(), stop_reason_event(reason)]

    def prompt_failed(self, message: str, *, kind: ErrorKind = ErrorKind.UPSTREAM_ERROR) -> list[Event]:
        """The ``session/prompt`` call failed (an error response) before the turn ended."""
        if self.finished:
            return []
        self.finished = True
        return [StreamError(kind=kind, message=message)]

    def _notification(self, update: dict[str, Any]) -> list[Event]:
        data = update.get("data")
        data = data if isinstance(data, dict) else {}
        match update.get("type"):
            case "context_usage":
                self.context_usage = data
                usage = usage_from(data)
                return [usage] if usage is not None else []
            case "chat_finish":
                self.finished = True
                return [*self.tools.finish(), finish_event(data)]
        return []


_INPUT_KEYS = ("inputTokens", "promptTokens", "input_tokens", "prompt_tokens")
_OUTPUT_KEYS = ("outputTokens", "completionTokens", "output_tokens", "completion_tokens")


def usage_from(data: dict[str, Any]) -> Usage | None:
    """This turn's counts from ``context_usage`` data, when it carries both of them."""
    found_in = next((data[k] for k in _INPUT_KEYS if _is_count(data.get(k))), None)
    found_out = next((data[k] for k in _OUTPUT_KEYS if _is_count(data.get(k))), None)
    if found_in is None or found_out is None:
        return None
    return Usage(input_tokens=found_in, output_tokens=found_out)


def finish_event(data: dict[str, Any]) -> Event:
    """The terminal event for ``chat_finish`` data (``reason``, maybe ``statusCode``)."""
    reason = str(data.get("reason") or "").lower()
    status = data.get("statusCode")
    if _is_count(status) and status != 200:
        kind = ErrorKind.UPSTREAM_TIMEOUT if status == 408 else ErrorKind.UPSTREAM_ERROR
        return _error(kind, f"status {status}: {reason or 'no reason given'}", data)
    if reason in _SUCCESS:
        return Finish(reason=FinishReason.STOP)
    if reason in _CANCELLED:
        return Finish(reason=FinishReason.CANCELLED)
    if reason in _LENGTH:
        return Finish(reason=FinishReason.LENGTH)
    kind = ErrorKind.UPSTREAM_TIMEOUT if reason in _TIMEOUT else ErrorKind.UPSTREAM_ERROR
    return _error(kind, reason, data)


def stop_reason_event(reason: str) -> Event:
    """The terminal event for a ``session/prompt`` ``stopReason`` (ACP vocabulary assumed)."""
    reason = reason.lower()
    if reason in _CANCELLED:
        return Finish(reason=FinishReason.CANCELLED)
    if reason in _LENGTH:
        return Finish(reason=FinishReason.LENGTH)
    if reason == "refusal":
        return _error(ErrorKind.UPSTREAM_ERROR, "the model refused", {"stopReason": reason})
    return Finish(reason=FinishReason.STOP)


def _error(kind: ErrorKind, what: str, detail: Any) -> StreamError:
    return StreamError(kind=kind, message=f"Lingma ended the turn: {what}", detail=detail)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _content_text(content: Any) -> str:
    """Text of an ACP content block (or a list of them, or a bare string)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else ""
    if isinstance(content, list):
        return "".join(_content_text(item) for item in content)
    return ""
