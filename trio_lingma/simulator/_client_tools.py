"""A simulated model that follows the gateway's client-tool convention.

Theory of operation
-------------------
When a question opens with the gateway's tool block (:mod:`trio_lingma.protocol.client_tools`),
the simulator plays a model that uses the tools: it calls a tool with arguments derived from
the request (every required property filled by type, so they validate against the schema),
and once the current request carries ``Tool result (<id>): ...`` lines it answers in text.
A re-ask (the gateway's ``# Tool call rejected`` message) gets a corrected call.

``[sim call tool=NAME[,NAME...] bad=syntax|schema]`` scripts it: which tools to call in one
answer (default: the tool ``tool_choice`` names, else the first tool), and a malformed call
(``bad=syntax``, or ``bad=1``: not JSON) or a schema-invalid one (``bad=schema``: required
properties missing) to exercise the gateway's re-ask. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..protocol.client_tools import CALL_CLOSE, CALL_OPEN, REASK_HEADING, TOOLS_HEADING
from ._scenario import DIRECTIVE_RE, DirectiveError

__all__ = ["client_tool_answer", "fill_arguments"]

_TOOL_RESULT = re.compile(r"^Tool result \(([^)\n]*)\)(?: \(error\))?: ?(.*)$", re.M)
_MUST_CALL = re.compile(r"You must call the tool `([^`]+)`")
_REASK_SCHEMA = re.compile(r"The arguments of `([^`]+)` must match this JSON Schema: (.*)$", re.M)
_REASK_TOOLS = re.compile(r"^The tools are: `([^`]+)`", re.M)
_BAD = {"1": "syntax", "syntax": "syntax", "schema": "schema"}


def client_tool_answer(question: str, *, context: str = "") -> str | None:
    """The answer text when the question uses client tools; None lets other scenarios play.

    ``context`` is the session's first question: a reply into a reused session carries only
    the new turn (e.g. the tool results), and the tools are known from the session's start.
    """
    if question.startswith(REASK_HEADING):
        return _reasked(question)
    if question.startswith(TOOLS_HEADING):
        tools, request = _split(question)
    elif context.startswith(TOOLS_HEADING):
        tools, request = _split(context)[0], question
    else:
        return None
    params = _call_directive(question)
    if params is None:
        return None
    results = _TOOL_RESULT.findall(request)
    if results:
        return "The tool returned: " + "; ".join(text.strip() for _, text in results)
    names = _chosen(params, tools, question)
    hint = _hint(request)
    bad = _BAD.get(params.get("bad", ""), "")
    calls = [_call(name, tools.get(name, {}), hint, bad if i == 0 else "") for i, name in enumerate(names)]
    return f"I will call {', '.join(names)}.\n\n" + "\n".join(calls)


def _call_directive(question: str) -> dict[str, str] | None:
    """The ``[sim call ...]`` parameters ({} without a directive); None for another scenario."""
    matches = list(DIRECTIVE_RE.finditer(question))
    if not matches:
        return {}
    last = matches[-1]
    if last["name"] != "call":
        return None
    params = dict(pair.partition("=")[::2] for pair in last["params"].split())
    unknown = set(params) - {"tool", "bad"}
    if unknown or params.get("bad", "1") not in _BAD:
        raise DirectiveError(f"scenario 'call' takes tool=NAME[,NAME] and bad=syntax|schema, got {params}")
    return params


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


def _chosen(params: dict[str, str], tools: dict[str, Any], question: str) -> list[str]:
    if params.get("tool"):
        return [n for n in params["tool"].split(",") if n]
    forced = _MUST_CALL.search(question)
    if forced:
        return [forced.group(1)]
    return list(tools)[:1]


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
