"""Sans-IO pieces of Lingma's legacy ``chat/*`` dialect (lingma-protocol.md §2, §3A, §6).

Builders return the ``params`` of the client's calls; :class:`LegacyTurn` turns the pushes of
one ``chat/ask`` turn into internal events; :func:`reply_to_server_request` says what to
answer to every server→client request — which must be answered at once (pitfall 1: an
unanswered push makes Lingma stall and deliver answers "one ask late").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .agent_tools import ToolAssembler
from .events import ErrorKind, Event, Finish, FinishReason, StreamError, ThinkingDelta

__all__ = [
    "CHAT_PUSHES",
    "LegacyTurn",
    "TOOL_REFUSAL",
    "ask_params",
    "followup_request",
    "initialize_params",
    "parse_models",
    "push_request_id",
    "reply_to_server_request",
    "split_model_mode",
    "tool_invoke_refusal",
]

#: Pushes that belong to one chat turn and carry ``params.requestId``.
CHAT_PUSHES = frozenset(
    {
        "chat/answer",
        "chat/think",
        "chat/finish",
        "chat/process_step_callback",
        "tool/call/sync",
        "tool/invoke",
    }
)

AUTH_LOGGED_IN = 2


def initialize_params(workdir: str, *, client_version: str) -> dict[str, Any]:
    """LSP-style ``initialize``: without rootUri/workspaceFolders Lingma logs
    "workspacePath is empty" (pitfall 4). Never follow it with ``initialized`` (pitfall 3)."""
    uri = Path(workdir).resolve().as_uri()
    return {
        "processId": None,
        "clientInfo": {"name": "trio-lingma", "version": client_version},
        "rootUri": uri,
        "capabilities": {},
        "workspaceFolders": [{"uri": uri, "name": Path(workdir).name or "workspace"}],
        "ideSeries": "trio-lingma",
        "pluginVersion": client_version,
        "allowStatistics": False,
    }


def ask_params(
    *,
    request_id: str,
    session_id: str,
    question: str,
    model_key: str,
    is_reply: bool,
    mode: str = "chat",
) -> dict[str, Any]:
    """``chat/ask`` params (``ChatAskParam``; the fields a real plugin sends)."""
    return {
        "requestId": request_id,
        "chatTask": "FREE_INPUT",
        "chatContext": None,
        "sessionId": session_id,
        "codeLanguage": "",
        "isReply": is_reply,
        "source": 1,
        "questionText": question,
        "stream": True,
        "taskDefinitionType": "",
        "extra": {"modelConfig": {"key": model_key}},
        "sessionType": "chat",
        "targetAgent": "",
        "pluginPayloadConfig": {"isEnableAutoMemory": False},
        "mode": mode,
        "shellType": "",
        "customModel": None,
    }


AUTH_STATES = {1: "NOT_LOGIN", 2: "LOGIN", 3: "LOGIN_EXPIRED", 4: "ERROR", 5: "NETWORK_ERROR",
               6: "IP_BANNED_ERROR", 7: "APP_DISABLED_ERROR"}


def logged_in(auth: Any) -> bool:
    """Whether an ``auth/status`` result says LOGIN (§2.2 ``AuthStateEnum``)."""
    return isinstance(auth, dict) and auth.get("status") == AUTH_LOGGED_IN


def not_logged_in_reason(auth: Any) -> str:
    """The operator-facing reason an instance is unusable, naming what to do."""
    status = auth.get("status") if isinstance(auth, dict) else None
    state = AUTH_STATES.get(status, "unknown") if isinstance(status, int) else "unknown"
    return (f"not logged in (auth/status {status} {state}): log in to Lingma, or mount a "
            "logged-in data directory as LINGMA_DATA_DIR")


def ask_accepted(result: Any) -> tuple[bool, str]:
    """Whether a ``chat/ask`` result accepted the turn (``isSuccess`` or ``success``)."""
    if not isinstance(result, dict):
        return False, f"unexpected chat/ask result {result!r}"
    ok = result.get("isSuccess", result.get("success", False))
    return bool(ok), str(result.get("errorMessage") or result.get("status") or "")


def push_request_id(params: Any) -> str | None:
    """The ``requestId`` a push belongs to, if any."""
    if isinstance(params, dict):
        rid = params.get("requestId")
        return rid if isinstance(rid, str) and rid else None
    return None


def parse_models(result: Any) -> list[tuple[str, str, bool]]:
    """``config/queryModels`` → [(key, display name, is_reasoning)], deduplicated, in order.

    The shape differs per runtime (§5: scenes → item lists), so walk the whole tree and take
    any object with a ``key``/``id``/``modelId`` like LP does.
    """
    found: dict[str, tuple[str, str, bool]] = {}
    stack = [result]
    while stack:
        node = stack.pop(0)
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            key = node.get("key") or node.get("modelId") or node.get("id")
            name = node.get("displayName") or node.get("name") or node.get("label") or key
            if isinstance(key, str) and key and key not in found:
                found[key] = (key, str(name), bool(node.get("isReasoning")))
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return list(found.values())


#: Why every ``tool/invoke`` is refused: the gateway plays the IDE but has no workspace.
TOOL_REFUSAL = (
    "This client is the trio-lingma API gateway, not an IDE: it does not execute IDE tools "
    "({name}). Continue without this tool and answer from what you already know."
)

#: Model-name suffixes that pick the ``chat/ask`` mode per request (``qwen3-coder:agent``).
MODE_SUFFIXES = {":agent": "agent", ":chat": "chat"}


def split_model_mode(model: str) -> tuple[str, str | None]:
    """``"qwen3-coder:agent"`` → ``("qwen3-coder", "agent")``; no suffix → ``(model, None)``."""
    for suffix, mode in MODE_SUFFIXES.items():
        if model.lower().endswith(suffix) and len(model) > len(suffix):
            return model[: -len(suffix)], mode
    return model, None


def tool_invoke_refusal(params: Any, *, now_ms: int = 0) -> dict[str, Any]:
    """A well-formed ``ToolInvokeResponse`` that declines the call (§4.2), so the agent goes on."""
    params = params if isinstance(params, dict) else {}
    name = str(params.get("name") or "unknown tool")
    return {
        "toolCallId": str(params.get("toolCallId") or ""),
        "name": name,
        "success": False,
        "errorMessage": TOOL_REFUSAL.format(name=name),
        "result": {},
        "startTime": now_ms,
        "timeConsuming": 0,
    }


def _invoke_is_async(params: Any) -> bool:
    return isinstance(params, dict) and params.get("async") is True


def followup_request(method: str, params: Any, *, now_ms: int = 0) -> tuple[str, dict[str, Any]] | None:
    """A request the client must send after answering a server request, if any.

    ``tool/invoke`` with ``async:true`` is only acked; its outcome goes back as a separate
    ``tool/invokeResult`` request (§4.2), which Lingma answers ``{"errorCode":null,...}``.
    """
    if method == "tool/invoke" and _invoke_is_async(params):
        return "tool/invokeResult", tool_invoke_refusal(params, now_ms=now_ms)
    return None


def reply_to_server_request(method: str, params: Any, *, now_ms: int = 0) -> Any:
    """The immediate answer to a server→client request (``None`` = JSON null).

    The older plugin declares ``chat/answer``/``chat/finish`` as returning ``Boolean``; ``ping``
    must not be null (the plugin NPEs, §6); a synchronous ``tool/invoke`` gets its refusal as
    the result, an asynchronous one a null ack (see :func:`followup_request`); everything else
    gets null (§6: "answer with null or an empty result").
    """
    if method in ("chat/answer", "chat/finish", "chat/think"):
        return True
    if method == "tool/invoke" and not _invoke_is_async(params):
        return tool_invoke_refusal(params, now_ms=now_ms)
    if method == "ping":
        return {"success": True}
    if method == "workspace/workspaceFolders":
        return []
    if method == "workspace/configuration":
        items = params.get("items", []) if isinstance(params, dict) else []
        return [None for _ in items]
    return None


class LegacyTurn:
    """Turns the pushes of one ``chat/ask`` turn into internal events.

    Answer text and the agent's tool pushes go through a :class:`~.tools.ToolAssembler`, so
    tool markers never reach the text and tool calls come out as tool events (§4.2).
    """

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.session_id: str | None = None
        self.finished = False
        self.tools = ToolAssembler()

    def feed(self, method: str, params: Any) -> list[Event]:
        if self.finished or not isinstance(params, dict):
            return []
        if isinstance(params.get("sessionId"), str) and params["sessionId"]:
            self.session_id = params["sessionId"]
        match method:
            case "chat/answer":
                text = params.get("text") or ""
                # Empty fragments are normal (pitfall 5) and never end the stream.
                return self.tools.answer(text) if isinstance(text, str) and text else []
            case "chat/think":
                text = params.get("text") or ""
                return [ThinkingDelta(text=text)] if text else []
            case "tool/call/sync":
                return self.tools.sync(params)
            case "tool/invoke":
                return self.tools.invoke(params)
            case "chat/finish":
                self.finished = True
                return [*self.tools.finish(), _finish_event(params)]
        return []


def _finish_event(params: dict[str, Any]) -> Event:
    status = params.get("statusCode")
    reason = str(params.get("reason") or "")
    if status == 200:
        cancelled = reason == "cancelled"
        return Finish(reason=FinishReason.CANCELLED if cancelled else FinishReason.STOP)
    kind = ErrorKind.UPSTREAM_TIMEOUT if status == 408 else ErrorKind.UPSTREAM_ERROR
    return StreamError(
        kind=kind,
        message=f"Lingma ended the turn with status {status}: {reason or 'no reason given'}",
        detail={"statusCode": status, "reason": reason},
    )
