"""Structured output (``response_format`` / Responses ``text.format``) over the text channel — sans-IO.

Theory of operation
-------------------
``chat/ask`` has no field for an output format, so it is emulated the way client tools are
(:mod:`.client_tools`): the question ends with a ``# Response format`` block (reply with one JSON
value and nothing else; the JSON Schema when there is one), and the answer is checked.

:class:`StructuredTurn` holds the answer's text back until the upstream turn finished (a JSON
document can only be judged whole), then takes the JSON out of it — the whole answer, else the
inside of a Markdown fence, else the first JSON object in the text — and checks it: ``json_object``
needs an object, ``json_schema`` a value valid against the schema (``jsonschema``). A good answer
goes out as one text delta holding just the JSON. A bad one is re-asked once in the same upstream
session (``# Response rejected``, naming the problem and the schema), like a bad tool call. If
the re-asked answer is still bad:

* no JSON at all (or no object for ``json_object``) -> an ``upstream_error`` ("did not match the
  response format"), whatever ``strict`` says: the client asked for JSON and would fail to parse;
* JSON that does not match the schema -> the same error when ``strict`` is true; without
  ``strict`` (OpenAI's best-effort mode) the JSON is delivered as it is.

Thinking passes through as it comes. A turn that ends in client tool calls (``Finish(TOOL_USE)``)
is not an answer: its text is released unchecked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from .conversation import ResponseFormat
from .events import ErrorKind, Event, Finish, FinishReason, StreamError, TextDelta
from .jsonutil import compact_json

__all__ = [
    "FORMAT_HEADING",
    "FORMAT_REASK_HEADING",
    "StructuredTurn",
    "extract_json",
    "format_block",
    "schema_error",
]

FORMAT_HEADING = "# Response format"
FORMAT_REASK_HEADING = "# Response rejected"
SCHEMA_LABEL = "JSON Schema: "

_FENCE = re.compile(r"```[\w-]*[ \t]*\n(.*?)\n?```", re.S)


def _what(fmt: ResponseFormat) -> str:
    if fmt.kind == "json_object" or fmt.schema is None:
        return "one JSON object"
    return "one JSON value that matches the JSON Schema below"


def format_block(fmt: ResponseFormat) -> str:
    """The block that ends every question of a request with a response format."""
    lines = [FORMAT_HEADING,
             f"Reply with {_what(fmt)} and nothing else: no text before or after it, no Markdown fence."]
    if fmt.name or fmt.description:
        lines.append(f"It is the {fmt.name or 'response'}" + (f": {fmt.description}" if fmt.description else "."))
    if fmt.kind == "json_schema" and fmt.schema is not None:
        lines.append(SCHEMA_LABEL + compact_json(fmt.schema))
    return "\n".join(lines)


def reask_block(fmt: ResponseFormat, problem: str) -> str:
    """What the model is told, once, when its answer was not the JSON asked for."""
    lines = [FORMAT_REASK_HEADING, f"Your reply could not be used: {problem}.",
             f"Reply again with only {_what(fmt)}: no other text, no Markdown fence."]
    if fmt.kind == "json_schema" and fmt.schema is not None:
        lines.append(SCHEMA_LABEL + compact_json(fmt.schema))
    return "\n".join(lines)


def extract_json(text: str) -> tuple[str, Any] | None:
    """``(json text, value)`` found in an answer: the whole of it, a fenced block, or the
    first JSON object in it; None when there is no JSON."""
    stripped = text.strip()
    candidates = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            return candidate, json.loads(candidate)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(text) if c == "{"):
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        return text[start:end], value
    return None


def schema_error(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (None: it is)."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    except Exception as exc:  # e.g. a "$schema" that is not a string
        return f"{type(exc).__name__}: {exc}"
    return None


class StructuredTurn:
    """The response format of one request, across its upstream answers (the first and one re-ask).

    Feed every event batch (after client tools); after a batch, :meth:`take_reask` gives the
    text to send into the same upstream session when the answer was unusable.
    """

    def __init__(self, fmt: ResponseFormat, *, reasks: int = 1) -> None:
        self._fmt = fmt
        self._validator: Any = None
        if fmt.kind == "json_schema" and fmt.schema is not None:
            self._validator = jsonschema.validators.validator_for(fmt.schema)(fmt.schema)
        self._held: list[str] = []
        self._reasks = reasks
        self.reask: str | None = None

    def __repr__(self) -> str:
        return f"<StructuredTurn {self._fmt.kind} strict={self._fmt.strict} reasks_left={self._reasks}>"

    def feed(self, events: list[Event]) -> list[Event]:
        """Text is held until the answer ends; then the JSON, a re-ask, or an error."""
        self.reask = None
        out: list[Event] = []
        for event in events:
            match event:
                case TextDelta(text=text):
                    self._held.append(text)
                case Finish(reason=FinishReason.STOP):
                    out += self._decide(event)
                case Finish():
                    out += [*self._release(), event]
                case _:
                    out.append(event)
        return out

    def take_reask(self) -> str | None:
        """The re-ask to send now (once), clearing it."""
        reask, self.reask = self.reask, None
        return reask

    def _release(self) -> list[Event]:
        text, self._held = "".join(self._held), []
        return [TextDelta(text=text)] if text else []

    def _decide(self, finish: Finish) -> list[Event]:
        text, self._held = "".join(self._held), []
        found = extract_json(text)
        problem = self._problem(found)
        if problem is None and found is not None:
            return [TextDelta(text=found[0]), finish]
        assert problem is not None
        if self._reasks > 0:
            self._reasks -= 1
            self.reask = reask_block(self._fmt, problem)
            return []
        if found is not None and self._fmt.kind == "json_schema" and not self._fmt.strict:
            return [TextDelta(text=found[0]), finish]  # best effort: JSON, if not the schema's
        return [StreamError(kind=ErrorKind.UPSTREAM_ERROR,
                            message=f"The model's answer did not match the response format after one retry: {problem}")]

    def _problem(self, found: tuple[str, Any] | None) -> str | None:
        if found is None:
            return "it contains no JSON"
        value = found[1]
        if self._validator is None:
            return None if isinstance(value, dict) else f"it must be a JSON object, not {type(value).__name__}"
        try:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        except Exception:  # an unresolvable $ref and the like: the schema's fault, not the model's
            return None
        if error is None:
            return None
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return f"it does not match the JSON Schema: value{where}: {error.message}"
