"""Parse the ``[sim <scenario> key=value ...]`` directive that scripts a simulated turn.

Theory of operation
-------------------
The gateway flattens a whole conversation into one ``questionText`` (lingma-protocol.md
§3B.7 "fresh" mode), so a directive written in an earlier user turn may still be in the text.
The directive that counts is therefore the LAST match of :data:`DIRECTIVE_RE` anywhere in
the text; every directive is removed from the text the scenarios echo back, so answers stay
predictable. A bad directive (unknown scenario or key, unparsable value) is an error that the
turn reports as ``chat/finish`` with statusCode 400, never a silent fallback: a typo in a
test should fail loudly.

This module is pure: no I/O, no trio.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

__all__ = [
    "DIRECTIVE_RE",
    "SCENARIOS",
    "Directive",
    "DirectiveError",
    "Scenario",
    "parse_question",
]

#: ``[sim NAME key=value key=value]``; values contain no whitespace and no ``]``.
DIRECTIVE_RE = re.compile(
    r"\[sim\s+(?P<name>[A-Za-z_]\w*)(?P<params>(?:\s+[A-Za-z_]\w*=[^\s\]]*)*)\s*\]"
)

SCENARIOS = (
    "echo",
    "think",
    "tools",
    "slow",
    "long",
    "error",
    "crash",
    "hang",
    "unanswered",
    "stray",
)


class DirectiveError(ValueError):
    """The directive names an unknown scenario or carries a bad parameter."""


@attrs.frozen(kw_only=True)
class Scenario:
    """What a turn should do; every field has the default of the ``echo`` scenario."""

    name: str = "echo"
    delay: float = 0.0  # seconds between pushes ("slow", or delay=S on any scenario)
    chunks: int = 5  # "long": number of answer chunks
    after: int = 0  # "error"/"crash"/"hang": answer chunks sent before the event
    status_code: int = 500  # "error": chat/finish statusCode
    calls: int = 1  # "tools": parallel tool calls
    tool_error: bool = False  # "tools status=ERROR": the tool fails


@attrs.frozen(kw_only=True)
class Directive:
    """The scenario to play and the question text with every directive removed."""

    scenario: Scenario
    text: str


def _bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        value = kind(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return convert


def _tool_status(raw: str) -> bool:
    if raw.upper() not in ("ERROR", "FINISHED"):
        raise ValueError("must be ERROR or FINISHED")
    return raw.upper() == "ERROR"


_DELAY = ("delay", _bounded(float, 0.0, 60.0))
_AFTER = ("after", _bounded(int, 0, 10_000))

# scenario -> directive key -> (Scenario field, converter). "delay" is accepted everywhere.
_PARAMS: dict[str, dict[str, tuple[str, Callable[[str], Any]]]] = {
    "echo": {},
    "think": {},
    "tools": {
        "calls": ("calls", _bounded(int, 1, 16)),
        "status": ("tool_error", _tool_status),
    },
    "slow": {},
    "long": {"chunks": ("chunks", _bounded(int, 0, 100_000))},
    "error": {"status": ("status_code", _bounded(int, 100, 599)), "after": _AFTER},
    "crash": {"after": _AFTER},
    "hang": {"after": _AFTER},
    "unanswered": {},
    "stray": {},
}

_DEFAULTS: dict[str, dict[str, Any]] = {"slow": {"delay": 0.2}}


def parse_question(question_text: str) -> Directive:
    """Find the scenario for a ``questionText``; raises :class:`DirectiveError`."""
    matches = list(DIRECTIVE_RE.finditer(question_text))
    text = DIRECTIVE_RE.sub("", question_text).strip()
    if not matches:
        return Directive(scenario=Scenario(), text=text)
    last = matches[-1]
    return Directive(scenario=_scenario(last["name"], last["params"]), text=text)


def _scenario(name: str, raw_params: str) -> Scenario:
    if name not in _PARAMS:
        raise DirectiveError(f"unknown simulator scenario {name!r}; known: {', '.join(SCENARIOS)}")
    allowed = {"delay": _DELAY, **_PARAMS[name]}
    fields: dict[str, Any] = dict(_DEFAULTS.get(name, {}))
    for pair in raw_params.split():
        key, _, raw = pair.partition("=")
        if key not in allowed:
            raise DirectiveError(f"scenario {name!r} takes no parameter {key!r}")
        field, convert = allowed[key]
        try:
            fields[field] = convert(raw)
        except ValueError as exc:
            raise DirectiveError(f"bad value {key}={raw!r} for scenario {name!r}: {exc}") from None
    return Scenario(name=name, **fields)
