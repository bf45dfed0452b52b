"""The internal event vocabulary between Lingma dialects and the wire adapters.

Every Lingma dialect turns its pushes into these events; every wire adapter (OpenAI,
Anthropic) turns these events into its own chunks or final response. Neither side knows the
other exists, so each wire format is written exactly once.

A well-formed stream is any number of content events followed by exactly one terminal
event: :class:`Finish` or :class:`StreamError`.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = [
    "ErrorKind",
    "Event",
    "Finish",
    "FinishReason",
    "PlanUpdate",
    "StreamError",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallArgsDelta",
    "ToolCallResult",
    "ToolCallStart",
    "Usage",
]


class FinishReason(enum.Enum):
    """Why a turn ended, in protocol-neutral words."""

    STOP = "stop"  # the model finished (OpenAI "stop", Anthropic "end_turn")
    LENGTH = "length"  # max_tokens reached
    STOP_SEQUENCE = "stop_sequence"  # one of the request's stop strings matched
    TOOL_USE = "tool_use"  # the model asks the *client* to run tools
    CANCELLED = "cancelled"  # upstream confirmed a chat/stop


class ErrorKind(enum.Enum):
    """Whose fault a failure is; each wire adapter maps these to its own codes."""

    UPSTREAM_ERROR = "upstream_error"  # Lingma reported a failure (chat/finish status != 200)
    UPSTREAM_CLOSED = "upstream_closed"  # the runtime died or closed the connection
    UPSTREAM_TIMEOUT = "upstream_timeout"  # a deadline passed waiting for Lingma
    OVERLOADED = "overloaded"  # no capacity
    INTERNAL = "internal"  # a bug in the gateway


@attrs.frozen(kw_only=True)
class TextDelta:
    text: str


@attrs.frozen(kw_only=True)
class ThinkingDelta:
    text: str


@attrs.frozen(kw_only=True)
class ToolCallStart:
    """A tool call began. ``executed`` is True when Lingma itself runs it (agent mode)."""

    id: str
    name: str
    executed: bool = True


@attrs.frozen(kw_only=True)
class ToolCallArgsDelta:
    """A piece of a tool call's JSON arguments; the concatenation parses as an object."""

    id: str
    json: str


@attrs.frozen(kw_only=True)
class ToolCallResult:
    id: str
    content: str
    is_error: bool = False


@attrs.frozen(kw_only=True)
class PlanUpdate:
    """Lingma's agent published its plan (ACP ``plan``): each entry's text and status.

    Shown only as text (``TOOL_BRIDGE=text``); the wire APIs have no shape for it, so the
    tool presenter drops it otherwise and the adapters never see it.
    """

    entries: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Usage:
    input_tokens: int
    output_tokens: int


@attrs.frozen(kw_only=True)
class Finish:
    reason: FinishReason = FinishReason.STOP
    stop_sequence: str | None = None


@attrs.frozen(kw_only=True)
class StreamError:
    kind: ErrorKind
    message: str
    detail: Any = None


Event = (
    TextDelta
    | ThinkingDelta
    | ToolCallStart
    | ToolCallArgsDelta
    | ToolCallResult
    | PlanUpdate
    | Usage
    | Finish
    | StreamError
)
