"""Lingma's own tool activity (agent mode) as internal tool events — sans-IO.

Theory of operation
-------------------
When Lingma runs its agent (``chat/ask`` mode ``agent``) it reports every tool it uses in three
ways (lingma-protocol.md §4.2, §8), none of which alone is complete:

* a fenced marker inside the ``chat/answer`` text, ```` ```toolCall::<name>::<id>::<STATUS>\\n``` ````
  — the only place the tool *name* appears together with the id;
* ``tool/call/sync`` status cards (``INIT``…``FINISHED``/``ERROR``/``CANCELLED``, then one
  ``REQUEST_FINISHED`` without an id) carrying ``parameters`` and, at the end, ``results``;
* ``tool/invoke`` requests to the IDE (the gateway), carrying ``name`` and ``parameters``.

:class:`ToolAssembler` merges them per ``toolCallId`` in whatever order they come and emits,
for each call, ``ToolCallStart`` + one ``ToolCallArgsDelta`` (compact JSON of the parameters)
*together, once both the name and the parameters are known*, and ``ToolCallResult`` when a
terminal status arrives. Keeping a call's start and arguments in one batch is what lets the
Anthropic encoder open, fill and close one block per call even when calls interleave.

Markers are removed from the text by :class:`MarkerFilter`. One matcher (:func:`_match_at`)
decides both the streaming case (text that could still become a marker is held back, so a
marker split across chunks at any byte is never half-leaked) and the final parse
(:func:`parse_markers` is the same filter run over the whole text), so the two cannot
disagree — the bug a tcflying fork had (§4.1). Only ``toolCall`` markers are stripped: the
plugin's regex would take any ```` ```word:: ```` fence, but no other kind is known and a
narrower match keeps ordinary code in the answer untouched.

:class:`ToolPresenter` applies the gateway's ``TOOL_BRIDGE`` setting on the event stream:
``bridge`` passes tool events on, ``text`` renders them as plain text lines, ``off`` drops them.
An ACP agent's plan (:class:`~.events.PlanUpdate`) has no wire shape: it is a text line in
``text`` mode and dropped otherwise.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import attrs

from .events import Event, PlanUpdate, TextDelta, ToolCallArgsDelta, ToolCallResult, ToolCallStart
from .jsonutil import compact_json

__all__ = [
    "MARKER_OPEN",
    "Marker",
    "MarkerFilter",
    "ToolAssembler",
    "ToolBridge",
    "ToolPresenter",
    "UNKNOWN_TOOL",
    "parse_markers",
]

MARKER_OPEN = "```toolCall::"
#: A would-be marker longer than this is ordinary text (bounds what the filter holds back).
MARKER_MAX = 1024
#: The name shown for a call whose marker never came (a tool card or result without a name).
UNKNOWN_TOOL = "unknown_tool"

# The plugin's regex, narrowed to toolCall fences: ```toolCall::<name>::<id>::<STATUS>\n+<body>```
_MARKER = re.compile(r"```toolCall::([^\n]+)\n+([^\n]*?)```")
_NAME = re.compile(r"[\w#+.-]+")


class ToolBridge(enum.Enum):
    """How Lingma-executed tool calls reach clients (the ``TOOL_BRIDGE`` setting)."""

    BRIDGE = "bridge"  # native tool-call shapes (OpenAI tool_calls, Anthropic tool blocks)
    TEXT = "text"  # plain text lines in the answer
    OFF = "off"  # not shown at all


@attrs.frozen(kw_only=True)
class Marker:
    """One ``toolCall`` marker: ``group(2).split("::")`` gives name and id, group(3) the status."""

    name: str
    id: str
    status: str


class _Partial(enum.Enum):
    """A typed sentinel (one member): the text could still become a marker, hold it back."""

    PARTIAL = enum.auto()


_PARTIAL = _Partial.PARTIAL


def _header(header: str) -> Marker | None:
    """``name::id::STATUS`` (the id may itself contain ``::``); None when malformed."""
    parts = header.split("::")
    if len(parts) < 3 or not _NAME.fullmatch(parts[0]) or not all(parts):
        return None
    return Marker(name=parts[0], id="::".join(parts[1:-1]), status=parts[-1].strip())


def _could_grow(rest: str) -> bool:
    """Whether ``rest`` (text from a backtick to the end of the buffer) is a marker's prefix."""
    if len(rest) > MARKER_MAX:
        return False
    if len(rest) <= len(MARKER_OPEN):
        return MARKER_OPEN.startswith(rest)
    if not rest.startswith(MARKER_OPEN):
        return False
    newline = rest.find("\n", len(MARKER_OPEN))
    if newline < 0:
        return True  # the header is still arriving
    if _header(rest[len(MARKER_OPEN):newline]) is None:
        return False
    return "\n" not in rest[newline:].lstrip("\n")  # body and closing fence are one line


def _match_at(buf: str, at: int, *, final: bool) -> tuple[int, Marker] | _Partial | None:
    """The one matcher: ``(end, marker)``, ``_PARTIAL`` (streaming only) or None."""
    found = _MARKER.match(buf, at)
    if found is not None and found.end() - at <= MARKER_MAX:
        marker = _header(found.group(1))
        return None if marker is None else (found.end(), marker)
    if not final and _could_grow(buf[at:]):
        return _PARTIAL
    return None


class MarkerFilter:
    """Split ``chat/answer`` text into plain text and :class:`Marker` items, chunk by chunk."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str, *, final: bool = False) -> list[str | Marker]:
        """Items in stream order; text that could begin a marker is held until it cannot."""
        buf, self._held = self._held + text, ""
        out: list[str | Marker] = []
        plain = search = 0
        while (tick := buf.find("`", search)) >= 0:
            match = _match_at(buf, tick, final=final)
            if match is _PARTIAL:
                self._held = buf[tick:]
                buf = buf[:tick]
                break
            if match is None:
                search = tick + 1
                continue
            end, marker = match
            out += [buf[plain:tick], marker] if tick > plain else [marker]
            plain = search = end
        if buf[plain:]:
            out.append(buf[plain:])
        return out

    def close(self) -> list[str | Marker]:
        """Whatever is still held, decided as a final parse (the answer is complete)."""
        return self.feed("", final=True)


def parse_markers(text: str) -> tuple[str, list[Marker]]:
    """The final parse of a whole answer: (text without markers, markers in order)."""
    items = MarkerFilter().feed(text, final=True)
    return "".join(i for i in items if isinstance(i, str)), [i for i in items if isinstance(i, Marker)]


# --------------------------------------------------------------------------- the assembler

_TERMINAL = {"FINISHED": False, "ERROR": True, "CANCELLED": True}


@attrs.define
class _Call:
    id: str
    name: str | None = None
    arguments: str | None = None  # compact JSON, once parameters are known
    result: ToolCallResult | None = None  # arrived, not yet emitted
    started: bool = False
    ended: bool = False



def _result_text(results: Any) -> str:
    """``results`` is a list of objects (§4.2): their ``content`` texts, else the JSON."""
    if not isinstance(results, list):
        return "" if results is None else compact_json(results)
    parts = []
    for item in results:
        content = item.get("content") if isinstance(item, dict) else None
        parts.append(content if isinstance(content, str) else compact_json(item))
    return "\n".join(parts)


def _result(call_id: str, status: str, params: dict[str, Any]) -> ToolCallResult:
    is_error = _TERMINAL[status]
    content = _result_text(params.get("results"))
    if is_error:
        why = str(params.get("errorMsg") or params.get("errorCode") or "")
        content = why or content or ("cancelled" if status == "CANCELLED" else "tool failed")
    return ToolCallResult(id=call_id, content=content, is_error=is_error)


class ToolAssembler:
    """Feed one turn's tool-related pushes in; get tool events and marker-free text out."""

    def __init__(self) -> None:
        self._filter = MarkerFilter()
        self._calls: dict[str, _Call] = {}

    def __repr__(self) -> str:
        open_ = sum(1 for c in self._calls.values() if not c.ended)
        return f"<ToolAssembler calls={len(self._calls)} open={open_}>"

    def answer(self, text: str) -> list[Event]:
        """A ``chat/answer`` text chunk."""
        return self._items(self._filter.feed(text))

    def sync(self, params: dict[str, Any]) -> list[Event]:
        """A ``tool/call/sync`` card (``REQUEST_FINISHED`` and id-less cards carry no call)."""
        call_id = params.get("toolCallId")
        status = str(params.get("toolCallStatus") or "")
        if not isinstance(call_id, str) or not call_id or status == "REQUEST_FINISHED":
            return []
        call = self._call(call_id)
        self._learn_parameters(call, params.get("parameters"))
        if status in _TERMINAL and call.result is None and not call.ended:
            call.result = _result(call_id, status, params)
        return self._advance(call)

    def invoke(self, params: dict[str, Any]) -> list[Event]:
        """A ``tool/invoke`` request (it names the tool and carries its parameters)."""
        call_id = params.get("toolCallId")
        if not isinstance(call_id, str) or not call_id:
            return []
        name = params.get("name")
        return self.learn(call_id, name=name if isinstance(name, str) else None, parameters=params.get("parameters"))

    def learn(self, call_id: str, *, name: str | None = None, parameters: Any = None) -> list[Event]:
        """What one report says about a call: its name and/or its parameters (first one wins)."""
        call = self._call(call_id)
        if name and call.name is None:
            call.name = name
        self._learn_parameters(call, parameters)
        return self._advance(call)

    def conclude(self, result: ToolCallResult) -> list[Event]:
        """A call's outcome (the first one counts); emitted once the call has started."""
        call = self._call(result.id)
        if call.result is None and not call.ended:
            call.result = result
        return self._advance(call)

    def finish(self) -> list[Event]:
        """At ``chat/finish``: held text, then every call still waiting for a name or arguments."""
        out = self._items(self._filter.close())
        for call in self._calls.values():
            if not call.started and (call.result is not None or call.name is not None):
                call.name = call.name or UNKNOWN_TOOL
                call.arguments = call.arguments or "{}"
                out += self._advance(call)
        return out

    def _items(self, items: list[str | Marker]) -> list[Event]:
        out: list[Event] = []
        for item in items:
            if isinstance(item, str):
                out.append(TextDelta(text=item))
                continue
            call = self._call(item.id)
            call.name = call.name or item.name
            out += self._advance(call)
        return out

    def _call(self, call_id: str) -> _Call:
        return self._calls.setdefault(call_id, _Call(id=call_id))

    @staticmethod
    def _learn_parameters(call: _Call, parameters: Any) -> None:
        # An empty object may just mean "not known yet" (INIT cards); a later card fills it in.
        if call.arguments is None and isinstance(parameters, dict) and parameters:
            call.arguments = compact_json(parameters)

    def _advance(self, call: _Call) -> list[Event]:
        out: list[Event] = []
        if not call.started and call.name is not None and (call.arguments or call.result):
            call.started = True
            out.append(ToolCallStart(id=call.id, name=call.name, executed=True))
            out.append(ToolCallArgsDelta(id=call.id, json=call.arguments or "{}"))
        if call.started and call.result is not None and not call.ended:
            call.ended = True
            out.append(call.result)
        return out


# --------------------------------------------------------------------------- presentation

#: Longest tool result shown in ``text`` mode (a read_file result can be a whole file).
TEXT_RESULT_MAX = 500


class ToolPresenter:
    """Apply ``TOOL_BRIDGE`` to an event stream (protocol-neutral, before shaping)."""

    def __init__(self, mode: ToolBridge) -> None:
        self.mode = mode
        self._names: dict[str, str] = {}
        self._args: dict[str, str] = {}
        self._pending: list[str] = []  # calls started, their line not yet written
        self._at_line_start = True

    def feed(self, events: list[Event]) -> list[Event]:
        if self.mode is ToolBridge.BRIDGE:
            return [event for event in events if not isinstance(event, PlanUpdate)]
        out: list[Event] = []
        for event in events:
            out += self._one(event)
        return out + self._flush()

    def _one(self, event: Event) -> list[Event]:
        match event:
            case ToolCallStart(id=call_id, name=name):
                self._names[call_id] = name
                self._args[call_id] = ""
                self._pending.append(call_id)
                return []
            case ToolCallArgsDelta(id=call_id, json=piece):
                self._args[call_id] = self._args.get(call_id, "") + piece
                return []
            case ToolCallResult():
                return self._flush() + self._line(self._result_line(event))
            case PlanUpdate(entries=entries):
                steps = "; ".join(f"{text} ({status})" if status else text for text, status in entries)
                return self._flush() + self._line(f"[plan: {steps}]")
        out = self._flush()
        if isinstance(event, TextDelta) and event.text:
            self._at_line_start = event.text.endswith("\n")
        return [*out, event]

    def _flush(self) -> list[Event]:
        out: list[Event] = []
        for call_id in self._pending:
            args = self._args.get(call_id) or "{}"
            out += self._line(f"[tool call {self._names[call_id]} {args}]")
        self._pending.clear()
        return out

    def _result_line(self, event: ToolCallResult) -> str:
        name = self._names.get(event.id, UNKNOWN_TOOL)
        content = event.content
        if len(content) > TEXT_RESULT_MAX:
            content = content[:TEXT_RESULT_MAX] + f"… ({len(event.content)} characters)"
        return f"[tool {'error' if event.is_error else 'result'} {name}: {content}]"

    def _line(self, line: str) -> list[Event]:
        if self.mode is ToolBridge.OFF:
            return []
        text = ("" if self._at_line_start else "\n") + line + "\n"
        self._at_line_start = True
        return [TextDelta(text=text)]
