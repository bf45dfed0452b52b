"""A simulated model that follows the gateway's client-tool convention.

Theory of operation
-------------------
When a question opens with the gateway's tool block (:mod:`trio_lingma.protocol.client_tools`),
the simulator plays a model that has tools but, like a real one, calls them only when the
user's newest message asks for it: a ``[sim call ...]`` directive, a plain request such as
"Use the Bash tool to run: ls" (the tool must be offered), or a ``tool_choice`` that forces a
call. Otherwise it answers in text. The arguments come from the user's own words (every
required property filled by type, so they validate against the schema), never from the
``<system-reminder>`` blocks agent clients add to a user turn, nor from the tool block, the
system text or the system messages of the current turn. Once the current request carries
``Tool result (<id>): ...`` lines it answers in text. A re-ask (the gateway's ``# Tool call
rejected`` message) gets a corrected call.

``[sim call tool=NAME[,NAME...] bad=syntax|schema]`` scripts it: which tools to call in one
answer (default: the tool ``tool_choice`` names, else the first tool), and a malformed call
(``bad=syntax``, or ``bad=1``: not JSON) or a schema-invalid one (``bad=schema``: required
properties missing) to exercise the gateway's re-ask. Other scenarios (``[sim echo]``,
``[sim slow]``...) play on the user's request only (:func:`scenario_text`), so an echo never
repeats the gateway's tool block. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..protocol.client_tools import CALL_CLOSE, CALL_OPEN, REASK_HEADING, TOOLS_HEADING
from ._scenario import DIRECTIVE_RE, DirectiveError

__all__ = ["client_tool_answer", "fill_arguments", "scenario_text"]

_TOOL_RESULT = re.compile(r"^Tool result \(([^)\n]*)\)(?: \(error\))?: ?(.*)$", re.M)
_MUST_CALL = re.compile(r"You must call the tool `([^`]+)`")
_REASK_SCHEMA = re.compile(r"The arguments of `([^`]+)` must match this JSON Schema: (.*)$", re.M)
_REASK_TOOLS = re.compile(r"^The tools are: `([^`]+)`", re.M)
_BAD = {"1": "syntax", "syntax": "syntax", "schema": "schema"}
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)
#: A system message of the current turn (Claude Code sends them after the user's) and the
#: "User: " label of a turn rendered as several entries (protocol/conversation.py).
_SYSTEM_ENTRY = re.compile(r"(?:\A|\n\n)System: .*?(?=\n\n(?:User: |Assistant: |Tool result \()|\Z)", re.S)
_USER_LABEL = re.compile(r"(?:\A|(?<=\n\n))User: ")
#: The rules the gateway appends to a turn sent into a reused session (client_tools.reply_question).
_REPLY_RULES = re.compile(
    r"\n\n\((?:Do not call any tool|You must call|When no tool is needed|Call at most one tool)[^\n]*\)(?=\n\n|\Z)")
#: "Use the Bash tool to run: ls" / "call the `get_time` tool for Oslo": a plain request for a tool.
_PLAIN_CALL = re.compile(r"^\W*(?:please\s+)?(?:use|call|run)\s+(?:the\s+)?`?([\w.-]+)`?\s+tool\b(.*)$", re.I | re.M)


def client_tool_answer(question: str, *, context: str = "") -> str | None:
    """The answer text when the question uses client tools; None lets other scenarios play.

    ``context`` is the session's first question: a reply into a reused session carries only
    the new turn (e.g. the tool results), and the tools are known from the session's start.
    """
    if question.startswith(REASK_HEADING):
        return _reasked(question)
    found = _tool_question(question, context)
    if found is None:
        return None
    tools, request = found
    params = _call_directive(request)
    if params is None:
        return None
    results = _TOOL_RESULT.findall(request)
    if results:
        return "The tool returned: " + "; ".join(text.strip() for _, text in results)
    chosen = _chosen(params, tools, question, request)
    if chosen is None:
        return None
    names, hint = chosen
    bad = _BAD.get(params.get("bad", ""), "")
    calls = [_call(name, tools.get(name, {}), hint, bad if i == 0 else "") for i, name in enumerate(names)]
    return f"I will call {', '.join(names)}.\n\n" + "\n".join(calls)


def scenario_text(question: str, *, context: str = "") -> str:
    """The text the scenarios read: the user's current request when client tools are offered."""
    found = _tool_question(question, context)
    return question if found is None else found[1]


def _tool_question(question: str, context: str) -> tuple[dict[str, dict[str, Any]], str] | None:
    """(tools, the user's current request without system reminders), or None without a tool block."""
    if question.startswith(TOOLS_HEADING):
        tools, request = _split(question)
    elif context.startswith(TOOLS_HEADING):
        tools, request = _split(context)[0], _REPLY_RULES.sub("", question)
    else:
        return None
    return tools, _USER_LABEL.sub("", _SYSTEM_ENTRY.sub("", _REMINDER.sub("", request))).strip()


def _call_directive(request: str) -> dict[str, str] | None:
    """The ``[sim call ...]`` parameters ({} without a directive); None for another scenario.

    A bare ``[sim call]`` gives ``{"tool": ""}``: a call of the default tool.
    """
    matches = list(DIRECTIVE_RE.finditer(request))
    if not matches:
        return {}
    last = matches[-1]
    if last["name"] != "call":
        return None
    params = dict(pair.partition("=")[::2] for pair in last["params"].split())
    if set(params) - {"tool", "bad"} or params.get("bad", "1") not in _BAD:
        raise DirectiveError(f"scenario 'call' takes tool=NAME[,NAME] and bad=syntax|schema, got {params}")
    return {"tool": "", **params}


def _split(question: str) -> tuple[dict[str, dict[str, Any]], str]:
    """The tools (name → JSON Schema) and the request text after the tool block."""
    start = question.find("<tools>\n") + len("<tools>\n")
    end = question.find("\n</tools>", start)
    tools: dict[str, dict[str, Any]] = {}
    for line in question[start:end].splitlines():
        spec = json.loads(line)
        tools[spec["name"]] = spec.get("parameters") or {}
    after = question.find("\n\n", end)
    request = question[after + 2 :] if after >= 0 else ""
    current = request.rfind("Current request:\n")
    return tools, request[current + len("Current request:\n") :] if current >= 0 else request


def _chosen(
    params: dict[str, str], tools: dict[str, Any], question: str, request: str
) -> tuple[list[str], str] | None:
    """The tools to call and the words their arguments come from; None: answer in text."""
    hint = _hint(request)
    if params.get("tool"):
        return [n for n in params["tool"].split(",") if n], hint
    forced = _MUST_CALL.search(question)
    if forced:
        return [forced.group(1)], hint
    if params:  # [sim call] without tool=
        return list(tools)[:1], hint
    for match in _PLAIN_CALL.finditer(request):
        if match.group(1) in tools:
            rest = match.group(2)
            words = rest.partition(":")[2] if ":" in rest else rest
            return [match.group(1)], _hint(words) if words.strip() else hint
    if "You must call at least one tool" in question:
        return list(tools)[:1], hint
    return None


def _hint(request: str) -> str:
    text = DIRECTIVE_RE.sub("", request).strip()
    return (text.splitlines()[0] if text else "example")[:40].strip() or "example"


def _call(name: str, schema: dict[str, Any], hint: str, bad: str) -> str:
    if bad == "syntax":
        return f"{CALL_OPEN}\n{name}(query={hint!r})\n{CALL_CLOSE}"
    arguments = {} if bad == "schema" else fill_arguments(schema, hint)
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def _reasked(question: str) -> str:
    found = _REASK_SCHEMA.search(question)
    if found:
        name, schema = found.group(1), json.loads(found.group(2))
    else:
        tools = _REASK_TOOLS.search(question)
        name, schema = (tools.group(1) if tools else "unknown"), {"type": "object"}
    return _call(name, schema, "corrected", "")


def fill_arguments(schema: Any, hint: str, depth: int = 0) -> Any:
    """A deterministic value valid for common JSON Schemas (required properties only)."""
    if not isinstance(schema, dict) or depth > 8:
        return hint
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return fill_arguments(schema[key][0], hint, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {k: fill_arguments(props.get(k, {}), hint, depth + 1) for k in schema.get("required", [])}
    return _scalar(kind, schema, hint, depth)


def _scalar(kind: Any, schema: dict[str, Any], hint: str, depth: int) -> Any:
    if kind == "array":
        return [fill_arguments(schema.get("items", {}), hint, depth + 1)] * int(schema.get("minItems", 0))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(1, int(low) + 1)
        return min(value, int(schema.get("maximum", value)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = hint.ljust(int(schema.get("minLength", 0)), "x")
    return text[: int(schema["maxLength"])] if "maxLength" in schema else text
