"""SSE framing: frames a standard SSE parser reads back to the same events."""

from __future__ import annotations

import json

import pytest

from trio_lingma.protocol.sse import DONE, comment, encode_event


def parse_frames(raw: bytes) -> list[dict[str, str]]:
    """A minimal WHATWG-style SSE reader (event name + joined data), ignoring comments."""
    frames = []
    for block in raw.decode("utf-8").split("\n\n")[:-1]:
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if data:
            frames.append({"event": event, "data": "\n".join(data)})
    return frames


def test_json_event_is_one_compact_line() -> None:
    assert encode_event({"a": 1, "b": [1, 2]}) == b'data: {"a":1,"b":[1,2]}\n\n'


def test_named_event() -> None:
    frame = encode_event({"type": "ping"}, event="ping")
    assert frame == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_non_ascii_is_not_escaped() -> None:
    frame = encode_event({"text": "你好 — ok"})
    assert frame == 'data: {"text":"你好 — ok"}\n\n'.encode()
    assert json.loads(parse_frames(frame)[0]["data"]) == {"text": "你好 — ok"}


def test_newlines_inside_json_strings_stay_escaped() -> None:
    frame = encode_event({"text": "a\nb\r\nc"})
    assert frame.count(b"\n") == 2
    assert json.loads(parse_frames(frame)[0]["data"]) == {"text": "a\nb\r\nc"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("one", b"data: one\n\n"),
        ("a\nb", b"data: a\ndata: b\n\n"),
        ("a\r\nb\rc", b"data: a\ndata: b\ndata: c\n\n"),
        ("trailing\n", b"data: trailing\ndata: \n\n"),
        ("", b"data: \n\n"),
    ],
)
def test_text_data_is_split_into_data_lines(text: str, expected: bytes) -> None:
    assert encode_event(text) == expected


def test_multiline_text_round_trips() -> None:
    frame = encode_event("line 1\nline 2", event="note")
    assert parse_frames(frame) == [{"event": "note", "data": "line 1\nline 2"}]


def test_event_name_with_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="single line"):
        encode_event("x", event="a\ndata: injected")


def test_done_sentinel() -> None:
    assert DONE == b"data: [DONE]\n\n"
    assert parse_frames(DONE) == [{"event": "message", "data": "[DONE]"}]


def test_comment_is_ignored_by_parsers() -> None:
    assert comment("ping") == b": ping\n\n"
    assert comment("a\nb") == b": a\n: b\n\n"
    assert parse_frames(comment("ping") + encode_event("x")) == [{"event": "message", "data": "x"}]
