"""The JSON scanner of a ``<tool_call>`` body: a call's top level, character by character.

It parses no values: it learns the tool name as soon as its string is complete and where the
``arguments`` object's text begins and ends while it streams, so the filter can announce the
call and stream its arguments early. ``json.loads`` of the finished body stays the judge.
"""

from __future__ import annotations

import enum
import json

__all__ = ["ARG_KEYS", "NAME_KEYS", "Expect", "JsonScan"]

#: Where a call names its arguments (``parameters``/``input`` tolerated) and its tool.
ARG_KEYS = ("arguments", "parameters", "input")
NAME_KEYS = ("name", "tool")


class Expect(enum.Enum):
    """What may come next at the object's top level."""

    OPEN = "{"  # the object itself
    KEY = "key"  # a key (or the closing brace)
    COLON = ":"
    VALUE = "value"  # any value
    STRING = "string"  # inside a string value
    SCALAR = "scalar"  # inside a number, true, false or null
    COMMA = ","  # a comma (or the closing brace)


class JsonScan:
    """Follows a JSON object's top level character by character (without parsing values).

    Enough to learn the tool name early and to know where the ``arguments`` object's text is
    while it streams; the final ``json.loads`` remains the judge of validity.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.in_str = self.esc = False
        self.expect = Expect.OPEN  # what may come next at the top level
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
            if c != "{" or self.expect is not Expect.OPEN:
                self.bad = True
            else:
                self.depth, self.expect = 1, Expect.KEY
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
        scalar = self.expect is Expect.SCALAR
        if c == '"' and self.expect in (Expect.KEY, Expect.VALUE):
            self.in_str = True
            if self.expect is Expect.KEY:
                self.key_start = i
            else:
                self.value_start, self.value_key, self.expect = i, self.key, Expect.STRING
        elif c == ":" and self.expect is Expect.COLON:
            self.expect = Expect.VALUE
        elif c in "{[" and self.expect is Expect.VALUE:
            self.value_start, self.value_key = i, self.key
            self.depth += 1
            if c == "{" and self.key in ARG_KEYS and self.args_at < 0:
                self.args_at = i
        elif c in ",}" and (scalar or self.expect in (Expect.COMMA, Expect.KEY)):
            if scalar:
                self._record(body[self.value_start : i].strip())
            self.expect = Expect.KEY
            if c == "}":
                self.depth, self.done = 0, True
        elif self.expect is Expect.VALUE:
            self.value_start, self.value_key, self.expect = i, self.key, Expect.SCALAR
        elif not scalar:
            self.bad = True

    def _string_end(self, body: str, i: int) -> None:
        if self.depth != 1:
            return
        if self.expect is Expect.KEY:
            try:
                self.key = json.loads(body[self.key_start : i + 1])
            except ValueError:
                self.bad = True
            self.expect = Expect.COLON
        elif self.expect is Expect.STRING:
            self._record(body[self.value_start : i + 1])

    def _record(self, raw: str) -> None:
        if self.value_key is not None:
            self.fields.setdefault(self.value_key, raw)
        self.value_start, self.value_key, self.expect = -1, None, Expect.COMMA

    def name(self) -> str | None:
        raw = next((self.fields[k] for k in NAME_KEYS if k in self.fields), None)
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, str) and value else None
