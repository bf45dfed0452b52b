"""Server-sent events framing (sans-IO).

Theory of operation
-------------------
An SSE frame is a block of ``field: value`` lines ended by an empty line (WHATWG HTML,
"Server-sent events", §9.2.6). A ``data`` value may not contain a line break, so text with
line breaks becomes several ``data:`` lines, which the client joins back with ``\\n``. JSON
payloads are encoded compactly without escaping non-ASCII (both OpenAI and Anthropic stream
UTF-8 JSON), and JSON never contains a raw line break, so a JSON event is one ``data:`` line.
A line that starts with ``:`` is a comment: clients ignore it, which makes it a keep-alive.
"""

from __future__ import annotations

import re
from json.encoder import encode_basestring
from typing import Any

from .jsonutil import compact_json

__all__ = ["DONE", "Template", "comment", "encode_event"]

DONE = b"data: [DONE]\n\n"
"""The OpenAI end-of-stream sentinel, written after the last chunk of a successful stream."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_event(data: dict[str, Any] | str, *, event: str | None = None) -> bytes:
    """One SSE frame: optional ``event:`` line, then the data (a JSON object or raw text)."""
    text = data if isinstance(data, str) else compact_json(data)
    lines = [] if event is None else [f"event: {_single_line(event, 'event')}"]
    lines += [f"data: {line}" for line in _LINE_BREAK.split(text)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class Template:
    """A JSON event frame with one string slot, rendered once: :meth:`render` only escapes the
    string (the hot path of a stream: the same envelope around every text delta)."""

    SLOT = "\ue000slot\ue001"  # private-use characters: never in an envelope of ours

    def __init__(self, data: dict[str, Any], *, event: str | None = None) -> None:
        frame = encode_event(data, event=event)
        self._head, self._tail = frame.split(encode_basestring(self.SLOT).encode("utf-8"))

    def render(self, text: str) -> bytes:
        """``encode_event`` of the data with ``text`` in the slot (JSON escapes line breaks)."""
        return self._head + encode_basestring(text).encode("utf-8") + self._tail


def comment(text: str) -> bytes:
    """An SSE comment frame (``: text``), ignored by clients; used as a keep-alive."""
    lines = [f": {line}" if line else ":" for line in _LINE_BREAK.split(text)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")



def _single_line(value: str, field: str) -> str:
    # An event name with a line break would inject a field into the frame.
    if _LINE_BREAK.search(value):
        raise ValueError(f"SSE {field} must be a single line: {value!r}")
    return value
