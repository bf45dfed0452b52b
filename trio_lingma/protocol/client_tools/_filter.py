"""The one matcher of client tool calls: answer text in, text and tool-call events out.

:class:`ToolCallFilter` serves both the streaming filter and the final parse
(:func:`parse_tool_calls` runs it over the whole text), so the two can never disagree on where a
call starts. Each finished call is checked by the request's :class:`Toolbox`: known tool,
allowed by ``tool_choice``, arguments valid against the tool's JSON Schema.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import attrs
import jsonschema

from ..conversation import ToolChoice, ToolSpec
from ..events import Event, TextDelta, ToolCallArgsDelta, ToolCallStart
from ..jsonutil import compact_json
from ._prompt import CALL_CLOSE, CALL_OPEN
from ._scan import ARG_KEYS, NAME_KEYS, JsonScan

__all__ = ["CallProblem", "ParsedCall", "ToolCallFilter", "Toolbox", "new_call_id", "parse_tool_calls"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_call_id(prefix: str = "call_") -> str:
    """A fresh tool call id in the wire API's style (``call_…`` or ``toolu_01…``)."""
    head = prefix + ("01" if prefix == "toolu_" else "")
    return head + "".join(secrets.choice(_BASE62) for _ in range(22 if head.endswith("01") else 24))


@attrs.frozen(kw_only=True)
class ParsedCall:
    """A valid client tool call (``arguments`` validated against the tool's schema)."""

    id: str
    name: str
    arguments: dict[str, Any]


@attrs.frozen(kw_only=True)
class CallProblem:
    """Why an answer cannot be used as it is: re-asked once, then reported."""

    message: str
    tool: str | None = None  # the tool concerned, when the model named a known one
    sent: bool = False  # part of the faulty call already went to the client


class Toolbox:
    """The request's tools and ``tool_choice``: which calls are acceptable."""

    def __init__(self, tools: tuple[ToolSpec, ...], *, choice: ToolChoice = None, parallel: bool = True) -> None:
        self.tools = {t.name: t for t in tools}
        self.choice = choice
        self.parallel = parallel
        self._validators: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Toolbox tools={len(self.tools)} choice={self.choice!r} parallel={self.parallel}>"

    @property
    def mandatory(self) -> bool:
        return self.choice == "required" or isinstance(self.choice, dict)

    def check_name(self, name: str) -> str | None:
        """Why a call to ``name`` is not allowed (None: it is)."""
        if name not in self.tools:
            known = ", ".join(self.tools) or "none"
            return f"there is no tool named {name!r} (the tools are: {known})"
        if isinstance(self.choice, dict) and name != self.choice["name"]:
            return f"this reply must call the tool {self.choice['name']!r}, not {name!r}"
        return None

    def check_arguments(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Why ``arguments`` do not match the tool's JSON Schema (None: they do)."""
        validator = self._validator(name)
        if validator is None:
            return None
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        except Exception:  # an unresolvable $ref and the like: the schema's fault, not the model's
            return None
        if error is None:
            return None
        where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        return f"the arguments of {name!r} do not match its schema: arguments{where}: {error.message}"

    def _validator(self, name: str) -> Any:
        if name not in self._validators:
            schema = self.tools[name].parameters or {"type": "object"}
            try:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                self._validators[name] = cls(schema)
            except Exception:  # the client's schema is invalid: do not enforce it
                self._validators[name] = None
        return self._validators[name]


# --------------------------------------------------------------------------- one call's body


_FUNCTION = re.compile(r"\s*<function=([^>\s]+)>(.*?)</function>\s*", re.S)
_PARAMETER = re.compile(r"<parameter=([^>\s]+)>\n?(.*?)\n?</parameter>", re.S)


def _decode_body(body: str, box: Toolbox) -> tuple[str, Any] | str:
    """``(name, arguments)`` from a call's body, or why it cannot be read."""
    text = body.strip()
    if text.startswith("<function="):
        return _decode_function(text, box)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the text inside <tool_call> is not one JSON object ({exc})"
    if not isinstance(value, dict):
        return "the text inside <tool_call> must be a JSON object, not " + type(value).__name__
    name = next((value[k] for k in NAME_KEYS if k in value), None)
    if not isinstance(name, str) or not name:
        return 'the call has no "name" string'
    arguments: Any = next((value[k] for k in ARG_KEYS if k in value), {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return f'the "arguments" of {name!r} are a string that is not JSON'
    if not isinstance(arguments, dict):
        return f'the "arguments" of {name!r} must be a JSON object'
    return name, arguments


def _decode_function(text: str, box: Toolbox) -> tuple[str, Any] | str:
    """Qwen3-Coder's XML body: values are JSON when the schema says they are not strings."""
    found = _FUNCTION.fullmatch(text)
    if found is None:
        return "the <function=...> call inside <tool_call> is not closed by </function>"
    name = found.group(1)
    tool = box.tools.get(name)
    props = tool.parameters.get("properties", {}) if tool else {}
    arguments: dict[str, Any] = {}
    for key, raw in _PARAMETER.findall(found.group(2)):
        kind = props.get(key, {}).get("type") if isinstance(props.get(key), dict) else None
        arguments[key] = raw
        if kind not in (None, "string"):
            try:
                arguments[key] = json.loads(raw)
            except ValueError:
                pass
    return name, arguments


@attrs.define
class _OpenCall:
    """A ``<tool_call>`` block being read."""

    id: str
    body: str = ""
    scan: JsonScan = attrs.Factory(JsonScan)
    scanned: int = 0
    textual: bool = False  # not a JSON body: the end is found by searching for the close tag
    started: bool = False  # its ToolCallStart went out
    args_sent: int = 0  # how far (in ``body``) the arguments text was streamed
    ignored: bool = False  # dropped (parallel_tool_calls: false)
    refused: str | None = None  # the name was refused (unknown tool, not the chosen one)

    def push(self, text: str) -> int | None:
        """Append ``text``; the length of ``text`` used when the block ended there, else None."""
        old = len(self.body)
        self.body += text
        if not self.textual:
            self.scanned = self.scan.scan(self.body, self.scanned)
            if self.scan.bad:
                self.textual = True
            elif self.scan.done:
                rest = self.body[self.scanned :].lstrip()
                if rest.startswith(CALL_CLOSE):
                    end = len(self.body) - len(rest) + len(CALL_CLOSE)
                    self.body = self.body[: self.scanned]
                    return end - old
                if CALL_CLOSE.startswith(rest):
                    return None
                self.textual = True
        at = self.body.find(CALL_CLOSE, max(0, old - len(CALL_CLOSE) + 1))
        if at < 0:
            return None
        self.body = self.body[:at]
        return at + len(CALL_CLOSE) - old


# --------------------------------------------------------------------------- the filter


class ToolCallFilter:
    """The one matcher: answer text in, text and client tool-call events out, chunk by chunk."""

    def __init__(self, box: Toolbox, *, new_id: Callable[[], str] = new_call_id,
                 incremental: bool = True) -> None:
        self._box = box
        self._new_id = new_id
        self._incremental = incremental
        self._held = ""  # a possible start of CALL_OPEN, not scanned yet
        self._space = ""  # trailing whitespace of the text, released only if text follows
        self._call: _OpenCall | None = None
        self.blocks = 0  # call blocks seen (after the first, plain text is dropped)
        self.calls: list[ParsedCall] = []
        self.problem: CallProblem | None = None

    def __repr__(self) -> str:
        return f"<ToolCallFilter blocks={self.blocks} calls={len(self.calls)} problem={self.problem is not None}>"

    @property
    def in_call(self) -> bool:
        return self._call is not None

    def feed(self, text: str, *, final: bool = False) -> list[Event]:
        """Events in stream order; text that could begin a call is held until it cannot."""
        buf, self._held = self._held + text, ""
        out: list[Event] = []
        i = 0
        while i < len(buf):
            if self._call is not None:
                used = self._call.push(buf[i:])
                out += self._progress()
                if used is None:
                    break
                out += self._end_call()
                i += used
                continue
            lt = buf.find("<", i)
            if lt < 0:
                out += self._text(buf[i:])
                break
            if buf.startswith(CALL_OPEN, lt):
                out += self._text(buf[i:lt])
                self._open()
                i = lt + len(CALL_OPEN)
            elif buf.startswith(CALL_CLOSE, lt):  # a stray closing tag: convention, not text
                # A space stands in for it, so the text around it can never join into a tag
                # ("<tool_call" + "</tool_call>" + ">" must not become "<tool_call>").
                out += self._text(buf[i:lt] + " ")
                i = lt + len(CALL_CLOSE)
            elif not final and (CALL_OPEN.startswith(buf[lt:]) or CALL_CLOSE.startswith(buf[lt:])):
                out += self._text(buf[i:lt])
                self._held = buf[lt:]
                break
            else:
                out += self._text(buf[i : lt + 1])
                i = lt + 1
        return _merged(out)

    def close(self) -> list[Event]:
        """The end of the answer: held text decided, an unclosed call judged as it stands."""
        out = self.feed("", final=True)
        if self._call is not None:  # no closing tag: a complete object still counts
            if not self._call.textual and self._call.scan.done:
                self._call.body = self._call.body[: self._call.scanned]
            out += self._end_call()
        if self.blocks == 0 and self._space:
            out.append(TextDelta(text=self._space))
        self._space = ""
        return out

    # -- text

    def _text(self, piece: str) -> list[Event]:
        if not piece or self.blocks:
            return []
        stripped = piece.rstrip()
        if not stripped:
            self._space += piece
            return []
        out, self._space = self._space + stripped, piece[len(stripped) :]
        return [TextDelta(text=out)]

    # -- calls

    def _open(self) -> None:
        self._space = ""
        self.blocks += 1
        call = self._call = _OpenCall(id=self._new_id())
        call.ignored = not self._box.parallel and self.blocks > 1

    def _progress(self) -> list[Event]:
        """While a block arrives: start the call once its name is accepted, stream arguments."""
        call = self._call
        assert call is not None
        if not self._incremental or call.ignored or call.refused or call.textual:
            return []
        scan, out = call.scan, list[Event]()
        if not call.started:
            name = scan.name()
            if name is None or scan.args_at < 0:
                return []
            call.refused = self._box.check_name(name)
            if call.refused:
                return []
            call.started, call.args_sent = True, scan.args_at
            out.append(ToolCallStart(id=call.id, name=name, executed=False))
        end = scan.args_end if scan.args_end >= 0 else call.scanned
        if end > call.args_sent:
            out.append(ToolCallArgsDelta(id=call.id, json=call.body[call.args_sent : end]))
            call.args_sent = end
        return out

    def _end_call(self) -> list[Event]:
        call, self._call = self._call, None
        assert call is not None
        if call.ignored:
            return []
        decoded = _decode_body(call.body, self._box)
        if isinstance(decoded, str):  # unreadable: the re-ask shows the schema of a tool it names
            return self._reject(call, decoded, next((n for n in self._box.tools if n in call.body), None))
        name, arguments = decoded
        why = self._box.check_name(name) or self._box.check_arguments(name, arguments)
        if why:
            return self._reject(call, why, name if name in self._box.tools else None)
        self.calls.append(ParsedCall(id=call.id, name=name, arguments=arguments))
        if call.started:
            return []
        return [ToolCallStart(id=call.id, name=name, executed=False),
                ToolCallArgsDelta(id=call.id, json=compact_json(arguments))]

    def _reject(self, call: _OpenCall, why: str, tool: str | None) -> list[Event]:
        if self.problem is None:
            self.problem = CallProblem(message=why, tool=tool, sent=call.started)
        elif call.started and not self.problem.sent:  # a faulty call reached the client: no re-ask
            self.problem = CallProblem(message=why, tool=tool, sent=True)
        return []


def _merged(events: list[Event]) -> list[Event]:
    """Adjacent text deltas as one."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(text=out[-1].text + event.text)
        else:
            out.append(event)
    return out


def parse_tool_calls(text: str, box: Toolbox, *, new_id: Callable[[], str] = new_call_id
                     ) -> tuple[str, list[ParsedCall], CallProblem | None]:
    """The final parse of a whole answer: the same filter, fed everything at once."""
    flt = ToolCallFilter(box, new_id=new_id)
    events = flt.feed(text) + flt.close()
    plain = "".join(e.text for e in events if isinstance(e, TextDelta))
    return plain, flt.calls, flt.problem
