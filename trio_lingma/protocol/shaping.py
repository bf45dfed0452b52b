"""Output shaping shared by every wire API: stop sequences, max_tokens and usage.

Theory of operation
-------------------
Lingma's ``chat/ask`` has no field for stop sequences or an output budget and reports no
usage (lingma-protocol.md §3A), so the gateway enforces them on the event stream itself:

* stop sequences: text is held back until it can no longer be the start of a stop string,
  so a stop string split across ``chat/answer`` chunks is still found and never leaked. When
  several could match, the one *completed* first wins (ties: the longer one), as a model that
  stops generating at the first stop string would do; the result never depends on chunking;
* max_tokens: the emitted text and thinking are counted exactly as one text (the Qwen count is
  not additive over deltas); the delta that would cross the budget is cut at a token boundary,
  so ``output_tokens <= max_tokens`` always holds;
* usage: exactly one :class:`Usage` event precedes the terminal :class:`Finish`: the gateway's
  own count, unless the runtime reported this turn's counts (an ACP ``context_usage`` with
  input and output counts) and the runtime itself ended the turn (no stop string or
  ``max_tokens`` cut, which would make its output count larger than what the client got).

When the shaper ends a turn early (:attr:`OutputShaper.done` turns True before upstream
finished) the caller stops the upstream turn (``chat/stop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import tokens
from .events import (
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    Usage,
)

__all__ = ["OutputShaper"]


class OutputShaper:
    """Feed upstream events in, get the events a client should see out."""

    def __init__(
        self,
        *,
        input_tokens: int,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
        count: Callable[[str], int] = tokens.count_text,
    ) -> None:
        self._input_tokens = input_tokens
        self._max_tokens = max_tokens
        self._stop = tuple(s for s in stop if s)
        self._holdback = max((len(s) for s in self._stop), default=1) - 1
        self._meter: _Meter = tokens.RunningCount() if count is tokens.count_text else _Recount(count)
        self._pending = ""  # text not yet released (might begin a stop string)
        self._upstream_usage: Usage | None = None
        self.done = False

    @property
    def output_tokens(self) -> int:
        """Tokens of everything released so far (text and thinking, in order, as one text)."""
        return self._meter.total

    def feed(self, event: Event) -> list[Event]:
        """Shape one upstream event; returns [] once the turn is done."""
        if self.done:
            return []
        match event:
            case TextDelta(text=text):
                return self._text(text)
            case Finish():
                return self._flush() + self._finish(event, upstream=True)
            case Usage():
                self._upstream_usage = event  # reported at the end if upstream ends the turn
                return []
            case _:
                # Thinking, tool events and errors: held text comes first, in stream order.
                out = self._flush()
                if self.done:  # the flush used up the budget: the turn ended there
                    return out
                if isinstance(event, ThinkingDelta):
                    return out + self._thinking(event.text)
                if isinstance(event, StreamError):
                    self.done = True
                return [*out, event]

    def _text(self, text: str) -> list[Event]:
        self._pending += text
        match = self._first_stop()
        if match is not None:
            at, stop = match
            before, self._pending = self._pending[:at], ""
            out = self._release(before)
            if self.done:  # the budget ran out first
                return out
            return out + self._finish(Finish(reason=FinishReason.STOP_SEQUENCE, stop_sequence=stop))
        cut = len(self._pending) - self._holdback
        if cut <= 0:
            return []
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self._release(ready)

    def _first_stop(self) -> tuple[int, str] | None:
        """(position, stop string) of the stop string completed first in the held text."""
        best: tuple[int, int, str] | None = None
        for stop in self._stop:
            at = self._pending.find(stop)
            if at >= 0 and (best is None or (at + len(stop), at) < best[:2]):
                best = (at + len(stop), at, stop)
        return None if best is None else (best[1], best[2])

    def _thinking(self, text: str) -> list[Event]:
        kept = self._take_budget(text)
        out: list[Event] = [ThinkingDelta(text=kept)] if kept else []
        if kept != text:
            return out + self._finish(Finish(reason=FinishReason.LENGTH))
        return out

    def _release(self, text: str) -> list[Event]:
        if not text:
            return []
        kept = self._take_budget(text)
        out: list[Event] = [TextDelta(text=kept)] if kept else []
        if kept != text or (self._pending and self._exhausted()):
            return out + self._finish(Finish(reason=FinishReason.LENGTH))
        return out

    def _flush(self) -> list[Event]:
        text, self._pending = self._pending, ""
        return self._release(text)

    def _exhausted(self) -> bool:
        limit = self._max_tokens
        return limit is not None and self._meter.at_most("") >= limit and self._meter.total >= limit

    def _take_budget(self, text: str) -> str:
        """The part of ``text`` that fits in the remaining budget (cut at a token boundary)."""
        if self._max_tokens is not None and self._meter.at_most(text) > self._max_tokens \
                and self._meter.count_with(text) > self._max_tokens:
            text = self._meter.fit(text, self._max_tokens)
        self._meter.append(text)
        return text

    def _finish(self, finish: Finish, *, upstream: bool = False) -> list[Event]:
        if self.done:
            return []
        self.done = True
        usage = Usage(input_tokens=self._input_tokens, output_tokens=self.output_tokens)
        if upstream and self._upstream_usage is not None:
            usage = self._upstream_usage
        return [usage, finish]


class _Meter(Protocol):
    @property
    def total(self) -> int: ...
    def count_with(self, extra: str) -> int: ...
    def at_most(self, extra: str) -> int: ...
    def append(self, text: str) -> None: ...
    def fit(self, text: str, limit: int) -> str: ...


class _Recount:
    """A meter for a custom ``count``: recounts the whole text (fine for tests and short texts)."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._text = ""

    @property
    def total(self) -> int:
        return self._count(self._text)

    def count_with(self, extra: str) -> int:
        return self._count(self._text + extra)

    def at_most(self, extra: str) -> int:
        return self.count_with(extra)

    def append(self, text: str) -> None:
        self._text += text

    def fit(self, text: str, limit: int) -> str:
        return tokens.longest_fitting(text, lambda part: self.count_with(part) <= limit)
