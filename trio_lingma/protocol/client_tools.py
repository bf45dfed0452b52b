"""Client tools (function calling) over Lingma's text channel — sans-IO.

Theory of operation
-------------------
Lingma's ``chat/ask`` has no field for a caller's tools (lingma-protocol.md §4.2: its agent only
runs its own IDE tools), so the gateway emulates function calling in the prompt, as the public
proxies do (§4.1): the question opens with a compact description of the tools and ONE strict
calling convention, and the answer text is parsed back into tool calls.

The convention is Qwen's own (the models Lingma serves were trained on it)::

    <tool_call>
    {"name": "<tool name>", "arguments": {<JSON object>}}
    </tool_call>

Tags rather than a Markdown fence, because answers are full of ordinary fences that must stay
text. Tolerated on the way back: ``parameters``/``input`` for ``arguments``, arguments given as
a JSON *string*, Qwen3-Coder's ``<function=NAME><parameter=KEY>value</parameter></function>``
body, and a missing closing tag at the very end of the answer.

One matcher, :class:`ToolCallFilter`, serves both the streaming filter and the final parse
(:func:`parse_tool_calls` runs the same filter over the whole text), so the two can never
disagree on where a call starts — the tcflying bug (§4.1). Text that could still become
``<tool_call>`` is held back; whitespace just before a call is dropped; everything after the
first call that is not another call is dropped too (a model that keeps writing after a call is
inventing its result); a stray ``</tool_call>`` is dropped as well: nothing of the convention
ever reaches the text. A call's ``arguments``
object is streamed as :class:`ToolCallArgsDelta` pieces while it arrives (``incremental``), as
soon as the tool name is known and accepted; with ``incremental=False`` a call is emitted only
once complete and valid.

Each finished call is checked: known tool, allowed by ``tool_choice``, arguments valid against
the tool's JSON Schema (``jsonschema``; a schema that is itself invalid is not enforced). The
first problem is kept as a :class:`CallProblem`. :class:`ClientToolTurn` applies the request's
policy at the end of each upstream answer: valid calls end the turn with ``Finish(TOOL_USE)``;
a problem (or no call when ``tool_choice`` demands one) asks the caller, once, to re-ask the
model in the same upstream session (:attr:`ClientToolTurn.reask`) — unless part of the faulty
call already reached the client, or the one re-ask was spent: then a ``StreamError`` ends it.
With ``parallel_tool_calls: false`` only the first call block of an answer counts; later ones
are dropped.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import attrs
import jsonschema

from .conversation import ChatRequest, ToolSpec, flatten, render_new_turn, split_new_turn
from .events import (
    ErrorKind,
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallStart,
)
from .jsonutil import compact_json

__all__ = [
    "CALL_CLOSE",
    "CALL_OPEN",
    "CallProblem",
    "ClientToolTurn",
    "ParsedCall",
    "REASK_HEADING",
    "TOOLS_HEADING",
    "ToolCallFilter",
    "Toolbox",
    "describe_tools",
    "fresh_question",
    "new_call_id",
    "offers_tools",
    "parse_tool_calls",
    "reask_message",
    "reply_question",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
TOOLS_HEADING = "# Tools"
REASK_HEADING = "# Tool call rejected"
_ARG_KEYS = ("arguments", "parameters", "input")
_NAME_KEYS = ("name", "tool")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_call_id(prefix: str = "call_") -> str:
    """A fresh tool call id in the wire API's style (``call_…`` or ``toolu_01…``)."""
    head = prefix + ("01" if prefix == "toolu_" else "")
    return head + "".join(secrets.choice(_BASE62) for _ in range(22 if head.endswith("01") else 24))


# --------------------------------------------------------------------------- the question


def offers_tools(request: ChatRequest) -> bool:
    """Whether the question describes tools (``tool_choice: "none"`` offers none)."""
    return bool(request.tools) and request.tool_choice != "none"



def _tool_line(tool: ToolSpec) -> str:
    params = {k: v for k, v in tool.parameters.items() if k != "$schema"}
    return compact_json({"name": tool.name, "description": tool.description, "parameters": params})


def _choice_rules(request: ChatRequest) -> list[str]:
    choice = request.tool_choice
    if choice == "none":
        return ["Do not call any tool in this reply; answer in plain text."]
    rules = []
    if isinstance(choice, dict):
        rules.append(f"You must call the tool `{choice['name']}` in this reply.")
    elif choice == "required":
        rules.append("You must call at least one tool in this reply.")
    else:
        rules.append("When no tool is needed, answer in plain text without any <tool_call> block.")
    if not request.parallel_tool_calls:
        rules.append("Call at most one tool in this reply.")
    return rules


def describe_tools(request: ChatRequest) -> str:
    """The tool block that opens a fresh question: tools, the convention, the rules."""
    return "\n".join([
        TOOLS_HEADING,
        "You can call the tools below. Each line inside <tools></tools> is one tool: its name, "
        "what it does and the JSON Schema of its arguments.",
        "<tools>", *(_tool_line(t) for t in request.tools), "</tools>",
        "To call a tool, write exactly this block, with one JSON object and nothing else inside:",
        CALL_OPEN, '{"name": "<tool name>", "arguments": {<arguments as a JSON object>}}', CALL_CLOSE,
        "Write one block per call (several blocks call several tools). After your calls stop "
        "writing: the results come back in the next message as `Tool result (<id>): ...`.",
        *_choice_rules(request),
    ])


def fresh_question(request: ChatRequest) -> str:
    """The whole question for a fresh upstream session (the tool block first, when offered)."""
    question = flatten(request)
    return f"{describe_tools(request)}\n\n{question}" if offers_tools(request) else question


def reply_question(request: ChatRequest) -> str:
    """The new turn for a reused session (which already has the tool block): turn + rules."""
    turn = render_new_turn(split_new_turn(request.messages)[1])
    if not request.tools:
        return turn
    return turn + "\n\n(" + " ".join(_choice_rules(request)) + ")"


# --------------------------------------------------------------------------- checking calls


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

    def __init__(self, tools: tuple[ToolSpec, ...], *, choice: Any = None, parallel: bool = True) -> None:
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
    name = next((value[k] for k in _NAME_KEYS if k in value), None)
    if not isinstance(name, str) or not name:
        return 'the call has no "name" string'
    arguments = next((value[k] for k in _ARG_KEYS if k in value), {})
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


class _JsonScan:
    """Follows a JSON object's top level character by character (without parsing values).

    Enough to learn the tool name early and to know where the ``arguments`` object's text is
    while it streams; the final ``json.loads`` remains the judge of validity.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.in_str = self.esc = False
        self.expect = "open"  # open, key, colon, value, comma (at the top level)
        self.key: str | None = None
        self.key_start = -1
        self.value_start = -1  # start of the top-level value being read
        self.value_key: str | None = None
        self.fields: dict[str, str] = {}  # top-level key -> raw value text
        self.args_at = self.args_end = -1  # where the ``arguments`` object's text is in the body
        self.done = self.bad = False

    def scan(self, body: str, start: int) -> int:
        """Scan ``body[start:]``; returns where it stopped (after the object, or the end)."""
        i = start
        while i < len(body) and not (self.done or self.bad):
            self._char(body, i)
            i += 1
        return i

    def _char(self, body: str, i: int) -> None:
        c = body[i]
        if self.in_str:
            if self.esc:
                self.esc = False
            elif c == "\\":
                self.esc = True
            elif c == '"':
                self.in_str = False
                self._string_end(body, i)
            return
        if c in " \t\r\n":
            return
        if self.depth == 0:
            if c != "{" or self.expect != "open":
                self.bad = True
            else:
                self.depth, self.expect = 1, "key"
            return
        if self.depth == 1:
            self._top(body, i, c)
        elif c == '"':
            self.in_str = True
        elif c in "{[":
            self.depth += 1
        elif c in "}]":
            self.depth -= 1
            if self.depth == 1:
                if self.value_start == self.args_at:
                    self.args_end = i + 1
                self._record(body[self.value_start : i + 1])

    def _top(self, body: str, i: int, c: str) -> None:
        scalar = self.expect == "scalar"
        if c == '"' and self.expect in ("key", "value"):
            self.in_str = True
            if self.expect == "key":
                self.key_start = i
            else:
                self.value_start, self.value_key, self.expect = i, self.key, "string"
        elif c == ":" and self.expect == "colon":
            self.expect = "value"
        elif c in "{[" and self.expect == "value":
            self.value_start, self.value_key = i, self.key
            self.depth += 1
            if c == "{" and self.key in _ARG_KEYS and self.args_at < 0:
                self.args_at = i
        elif c in ",}" and (scalar or self.expect in ("comma", "key")):
            if scalar:
                self._record(body[self.value_start : i].strip())
            self.expect = "key"
            if c == "}":
                self.depth, self.done = 0, True
        elif self.expect == "value":
            self.value_start, self.value_key, self.expect = i, self.key, "scalar"
        elif not scalar:
            self.bad = True

    def _string_end(self, body: str, i: int) -> None:
        if self.depth != 1:
            return
        if self.expect == "key":
            try:
                self.key = json.loads(body[self.key_start : i + 1])
            except ValueError:
                self.bad = True
            self.expect = "colon"
        elif self.expect == "string":
            self._record(body[self.value_start : i + 1])

    def _record(self, raw: str) -> None:
        if self.value_key is not None:
            self.fields.setdefault(self.value_key, raw)
        self.value_start, self.value_key, self.expect = -1, None, "comma"

    def name(self) -> str | None:
        raw = next((self.fields[k] for k in _NAME_KEYS if k in self.fields), None)
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, str) and value else None


@attrs.define
class _OpenCall:
    """A ``<tool_call>`` block being read."""

    id: str
    body: str = ""
    scan: _JsonScan = attrs.Factory(_JsonScan)
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


# --------------------------------------------------------------------------- the policy


def reask_message(problem: CallProblem, box: Toolbox, *, accepted: int = 0) -> str:
    """What the model is told, once, in the same session when its answer was unusable."""
    lines = [REASK_HEADING, f"Your reply could not be used: {problem.message}."]
    if accepted:
        lines.append(f"Your other {accepted} tool call(s) were accepted; do not repeat them.")
    tool = box.tools.get(problem.tool or "")
    if tool is not None:
        lines.append(f"The arguments of `{tool.name}` must match this JSON Schema: {compact_json(tool.parameters)}")
    else:
        lines.append("The tools are: " + ", ".join(f"`{n}`" for n in box.tools) + ".")
    lines += ["Reply again with only the corrected tool call, exactly in this form:",
              CALL_OPEN, '{"name": "<tool name>", "arguments": {<arguments as a JSON object>}}', CALL_CLOSE]
    return "\n".join(lines)


class ClientToolTurn:
    """Client tools for one request, across its upstream answers (the first and one re-ask).

    Feed every upstream event batch; after a batch, :attr:`reask` (when not None) is the text to
    send into the same upstream session (``isReply``) before feeding its answer the same way.
    """

    def __init__(self, request: ChatRequest, *, incremental: bool, new_id: Callable[[], str] | None = None,
                 reasks: int = 1) -> None:
        prefix = request.tool_id_prefix
        self._box = Toolbox(request.tools, choice=request.tool_choice, parallel=request.parallel_tool_calls)
        self._new_id = new_id or (lambda: new_call_id(prefix))
        self._incremental = incremental
        self._filter = self._new_filter()
        self._reasks = reasks
        self.calls: list[ParsedCall] = []
        self.reask: str | None = None

    def __repr__(self) -> str:
        return f"<ClientToolTurn calls={len(self.calls)} reasks_left={self._reasks}>"

    def _new_filter(self) -> ToolCallFilter:
        return ToolCallFilter(self._box, new_id=self._new_id, incremental=self._incremental)

    def feed(self, events: list[Event]) -> list[Event]:
        """Answer text becomes text and tool-call events; the Finish is decided here."""
        self.reask = None
        out: list[Event] = []
        for event in events:
            match event:
                case TextDelta(text=text):
                    out += self._filter.feed(text)
                case Finish():
                    out += self._filter.close()
                    out += self._decide(event)
                case StreamError():
                    out += self._filter.close()
                    out.append(event)
                case _:
                    out.append(event)
        return out

    def take_reask(self) -> str | None:
        """The re-ask to send now (once), clearing it."""
        reask, self.reask = self.reask, None
        return reask

    def _decide(self, finish: Finish) -> list[Event]:
        self.calls += self._filter.calls
        problem = self._filter.problem
        if problem is None and not self.calls and self._box.mandatory and finish.reason is FinishReason.STOP:
            problem = CallProblem(message=self._missing(), tool=self._chosen())
        self._filter = self._new_filter()
        if problem is None:
            return [Finish(reason=FinishReason.TOOL_USE)] if self.calls else [finish]
        if self._reasks > 0 and not problem.sent:
            self._reasks -= 1
            self.reask = reask_message(problem, self._box, accepted=len(self.calls))
            return []
        why = "after one retry" if not problem.sent else "and part of it was already sent"
        return [StreamError(kind=ErrorKind.UPSTREAM_ERROR,
                            message=f"The model made an invalid tool call {why}: {problem.message}")]

    def _chosen(self) -> str | None:
        return self._box.choice["name"] if isinstance(self._box.choice, dict) else None

    def _missing(self) -> str:
        name = self._chosen()
        what = f"a call of the tool {name!r}" if name else "at least one tool call"
        return f"this reply must contain {what} in a <tool_call> block, and it had none"
