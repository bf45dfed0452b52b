"""Output shaping shared by every wire API: stop sequences, max_tokens and usage.

Theory of operation
-------------------
Lingma's ``chat/ask`` has no field for stop sequences or an output budget and reports no
usage (lingma-protocol.md §3A), so the gateway enforces them on the event stream itself:

* stop sequences: text is held back until it can no longer be the start of a stop string,
  so a stop string split across ``chat/answer`` chunks is still found and never leaked;
* max_tokens: every emitted text/thinking delta is counted with the Qwen tokenizer; the delta
  that would cross the budget is cut at a token boundary;
* usage: exactly one :class:`Usage` event precedes the terminal :class:`Finish`.

When the shaper ends a turn early (:attr:`OutputShaper.done` turns True before upstream
finished) the caller stops the upstream turn (``chat/stop``).
"""

from __future__ import annotations

from collections.abc import Callable

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
        self._count = count
        self._pending = ""  # text not yet released (might begin a stop string)
        self._emitted: list[str] = []  # everything released, for the exact final count
        self._budget_used = 0
        self.done = False

    @property
    def output_tokens(self) -> int:
        return self._count("".join(self._emitted))

    def feed(self, event: Event) -> list[Event]:
        """Shape one upstream event; returns [] once the turn is done."""
        if self.done:
            return []
        match event:
            case TextDelta(text=text):
                return self._text(text)
            case ThinkingDelta(text=text):
                return self._thinking(text)
            case Finish():
                return self._flush() + self._finish(event)
            case StreamError():
                self.done = True
                return [*self._flush(), event]
            case Usage():
                return []  # the gateway's own count is authoritative and consistent
            case _:
                return [*self._flush(), event]

    def _text(self, text: str) -> list[Event]:
        self._pending += text
        for stop in self._stop:
            at = self._pending.find(stop)
            if at >= 0:
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

    def _thinking(self, text: str) -> list[Event]:
        kept = self._take_budget(text)
        out: list[Event] = [ThinkingDelta(text=kept)] if kept else []
        if kept != text or self._exhausted():
            return out + self._finish(Finish(reason=FinishReason.LENGTH))
        return out

    def _release(self, text: str) -> list[Event]:
        if not text:
            return []
        kept = self._take_budget(text)
        out: list[Event] = [TextDelta(text=kept)] if kept else []
        if kept != text or (self._exhausted() and self._pending):
            return out + self._finish(Finish(reason=FinishReason.LENGTH))
        return out

    def _flush(self) -> list[Event]:
        text, self._pending = self._pending, ""
        return self._release(text)

    def _exhausted(self) -> bool:
        return self._max_tokens is not None and self._budget_used >= self._max_tokens

    def _take_budget(self, text: str) -> str:
        """The part of ``text`` that fits in the remaining budget (cut at a token boundary)."""
        n = self._count(text)
        if self._max_tokens is None or self._budget_used + n <= self._max_tokens:
            self._budget_used += n
            self._emitted.append(text)
            return text
        room = max(self._max_tokens - self._budget_used, 0)
        kept = _first_tokens(text, room)
        self._budget_used = self._max_tokens
        self._emitted.append(kept)
        return kept

    def _finish(self, finish: Finish) -> list[Event]:
        if self.done:
            return []
        self.done = True
        usage = Usage(input_tokens=self._input_tokens, output_tokens=self.output_tokens)
        return [usage, finish]


def _first_tokens(text: str, n: int) -> str:
    if n <= 0:
        return ""
    tok = tokens._tokenizer()
    ids = tok.encode(text, allowed_special=set(), disallowed_special=())
    return str(tok.decode(ids[:n], errors="ignore"))
