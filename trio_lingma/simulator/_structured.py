"""A simulated model that follows the gateway's response-format block (structured output).

When a question ends with the gateway's ``# Response format`` block
(:mod:`trio_lingma.protocol.structured`), the simulator answers with one JSON value valid for the
schema it names (every required property filled by type from the user's words, as for client
tools), or ``{"answer": ...}`` for a plain JSON object. A re-ask (``# Response rejected``) gets a
corrected answer. ``[sim json bad=syntax|schema|prose]`` scripts a faulty first answer: not JSON,
JSON missing the schema's required properties, or JSON wrapped in prose and a Markdown fence (which
the gateway must still find). Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from ..protocol.structured import FORMAT_HEADING, FORMAT_REASK_HEADING, SCHEMA_LABEL
from ._client_tools import fill_arguments
from ._scenario import DIRECTIVE_RE, DirectiveError

__all__ = ["structured_answer"]

_BAD = ("syntax", "schema", "prose")


def structured_answer(question: str) -> str | None:
    """The answer when the question asks for a response format; None lets other scenarios play."""
    if question.startswith(FORMAT_REASK_HEADING):
        return json.dumps(fill_arguments(_schema(question), "corrected"), ensure_ascii=False)
    at = question.rfind(f"\n{FORMAT_HEADING}\n")
    if at < 0 and not question.startswith(f"{FORMAT_HEADING}\n"):
        return None
    request, block = question[: max(at, 0)], question[max(at, 0):]
    bad = _bad(request)
    if bad is None:
        return None
    hint = next((line.strip() for line in DIRECTIVE_RE.sub("", request).splitlines() if line.strip()), "example")
    value = fill_arguments(_schema(block), hint[:40])
    if bad == "syntax":
        return f"Here it is: {{{hint[:20]}"
    if bad == "schema":
        return "{}"
    text = json.dumps(value, ensure_ascii=False)
    return f"Sure, here you go:\n```json\n{text}\n```\nAnything else?" if bad == "prose" else text


def _schema(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith(SCHEMA_LABEL):
            found: dict[str, Any] = json.loads(line[len(SCHEMA_LABEL):])
            return found
    return {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def _bad(request: str) -> str | None:
    """``""`` for a good answer, the fault a ``[sim json bad=...]`` asks for; None: another scenario."""
    matches = list(DIRECTIVE_RE.finditer(request))
    if not matches:
        return ""
    last = matches[-1]
    if last["name"] != "json":
        return None
    params = dict(pair.partition("=")[::2] for pair in last["params"].split())
    if set(params) - {"bad"} or params.get("bad", "syntax") not in _BAD:
        raise DirectiveError(f"scenario 'json' takes bad=syntax|schema|prose, got {params}")
    bad: str = params.get("bad", "")
    return bad
