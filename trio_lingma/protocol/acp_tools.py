"""ACP tool and plan updates as the same tool events as the legacy dialect — sans-IO.

Theory of operation
-------------------
QoderCN session replays (WE ``pipeline/parse.js``; lingma-protocol.md §11) show Lingma's agent
reporting its tools in ``session/update`` notifications:

* ``tool_call`` ``{toolCallId, title, kind, rawInput}`` when a call starts (ACP also allows a
  ``status`` and ``content`` here, so a one-shot report is accepted too);
* ``tool_call_update`` ``{toolCallId, status, rawOutput}`` as it progresses; ``completed`` ends
  it, ``failed`` (the status WE counts as a failure) or ``cancelled`` end it as an error;
* ``_meta`` keys on the notification (WE) or on the update (LP puts its ``_meta`` there):
  ``ai-coding/tool-name`` (the tool's real name; ``title`` is a human label),
  ``ai-coding/tool-kind``, ``ai-coding/tool-call-error-code``/``-message``, and
  ``ai-coding/parent-tool-call-id`` for calls a sub-agent made inside another call (the wire
  APIs have no nesting, so such a call is reported like any other);
* ``plan`` ``{entries: [{content, status, priority}]}``: the agent's to-do list.

:func:`tool_call` and :func:`tool_call_update` feed the legacy dialect's
:class:`~.agent_tools.ToolAssembler` (name + parameters → ``ToolCallStart`` +
``ToolCallArgsDelta``, the outcome → ``ToolCallResult``), so ``TOOL_BRIDGE`` presents ACP and
legacy tool calls identically; :func:`plan_update` gives a :class:`~.events.PlanUpdate`.
OC's one live agent-mode probe saw no tool updates at all, so everything here tolerates
missing fields.
"""

from __future__ import annotations

import json
from typing import Any

from .agent_tools import ToolAssembler
from .events import Event, PlanUpdate, ToolCallResult
from .jsonutil import compact_json

__all__ = ["META_TOOL_KIND", "META_TOOL_NAME", "plan_update", "tool_call", "tool_call_update", "update_meta"]

META_TOOL_NAME = "ai-coding/tool-name"
META_TOOL_KIND = "ai-coding/tool-kind"
META_ERROR_CODE = "ai-coding/tool-call-error-code"
META_ERROR_MESSAGE = "ai-coding/tool-call-error-message"

#: Terminal ``status`` values → is it an error.
_ENDS = {"completed": False, "failed": True, "error": True, "cancelled": True, "canceled": True}


def update_meta(params: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The notification's ``_meta`` with the update's own ``_meta`` on top."""
    outer, inner = params.get("_meta"), update.get("_meta")
    return {**(outer if isinstance(outer, dict) else {}), **(inner if isinstance(inner, dict) else {})}


def tool_call(tools: ToolAssembler, update: dict[str, Any], meta: dict[str, Any]) -> list[Event]:
    """A ``tool_call`` update: the call's name and arguments (and its end, if reported at once)."""
    call_id = update.get("toolCallId")
    if not isinstance(call_id, str) or not call_id:
        return []
    name = _first_text(meta.get(META_TOOL_NAME), update.get("title"), update.get("kind"), meta.get(META_TOOL_KIND))
    events = tools.learn(call_id, name=name, parameters=_arguments(update.get("rawInput")))
    return events + _outcome(tools, call_id, update, meta)


def tool_call_update(tools: ToolAssembler, update: dict[str, Any], meta: dict[str, Any]) -> list[Event]:
    """A ``tool_call_update``: a late name or arguments, and the end at a terminal status."""
    call_id = update.get("toolCallId")
    if not isinstance(call_id, str) or not call_id:
        return []
    events: list[Event] = []
    name = _first_text(meta.get(META_TOOL_NAME), update.get("title"), update.get("kind"))
    arguments = _arguments(update.get("rawInput"))
    if name or arguments:
        events += tools.learn(call_id, name=name, parameters=arguments)
    return events + _outcome(tools, call_id, update, meta)


def plan_update(update: dict[str, Any]) -> list[Event]:
    """A ``plan`` update: its entries' texts and statuses."""
    entries = update.get("entries")
    if not isinstance(entries, list):
        return []
    items = tuple((_first_text(e.get("content"), e.get("title")) or "", _first_text(e.get("status")) or "")
                  for e in entries if isinstance(e, dict))
    return [PlanUpdate(entries=tuple(item for item in items if item[0]))] if items else []


def _outcome(tools: ToolAssembler, call_id: str, update: dict[str, Any], meta: dict[str, Any]) -> list[Event]:
    status = str(update.get("status") or "").lower()
    if status not in _ENDS:
        return []
    error = _first_text(meta.get(META_ERROR_MESSAGE), _code(meta.get(META_ERROR_CODE)))
    is_error = _ENDS[status] or error is not None
    content = _output_text(update.get("rawOutput"), update.get("content"))
    if is_error:
        content = error or content or status
    return tools.conclude(ToolCallResult(id=call_id, content=content, is_error=is_error))


def _arguments(raw: Any) -> dict[str, Any] | None:
    """``rawInput`` as an arguments object (a JSON string is parsed; anything else is wrapped)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {"input": raw} if raw else None
    return raw if isinstance(raw, dict) else {"input": raw}


def _output_text(raw: Any, content: Any) -> str:
    """``rawOutput`` items' ``content`` texts (WE's terminal output), else ACP ``content`` blocks."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and raw:
        return "\n".join(i["content"] if isinstance(i, dict) and isinstance(i.get("content"), str)
                         else compact_json(i) for i in raw)
    if raw is not None and raw != []:
        return compact_json(raw)
    if isinstance(content, list):
        return "".join(_block_text(block) for block in content)
    return ""


def _block_text(block: Any) -> str:
    """ACP tool content: ``{type: "content", content: {type: "text", text}}`` or a bare text block."""
    if not isinstance(block, dict):
        return ""
    inner = block.get("content")
    text = (inner if isinstance(inner, dict) else block).get("text")
    return text if isinstance(text, str) else ""


def _code(value: Any) -> str | None:
    """An error code worth reporting (absent, null, empty and 0 mean none)."""
    if value is None or value == "" or value == 0 or isinstance(value, bool):
        return None
    return f"error code {value}"


def _first_text(*values: Any) -> str | None:
    return next((v for v in values if isinstance(v, str) and v.strip()), None)
