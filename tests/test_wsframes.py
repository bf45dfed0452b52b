"""RFC 6455 framing for the client end, sans-IO: bytes in, messages out, in any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_lingma.backend.wsframes import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    FrameReader,
    ProtocolViolation,
    encode,
)


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked frame, as a server sends it."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


def unmask(frame: bytes) -> tuple[int, bytes]:
    """The opcode and payload of one client frame (checking the mask bit is set)."""
    assert frame[0] & 0x80 and frame[1] & 0x80
    n, at = frame[1] & 0x7F, 2
    if n == 126:
        n, at = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(frame[2:10], "big"), 10
    key, body = frame[at:at + 4], frame[at + 4:]
    assert len(body) == n
    return frame[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_client_frames_are_masked_and_carry_the_payload(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert unmask(encode(TEXT, payload, b"\x01\x02\x03\x04")) == (TEXT, payload)


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(1, 40), max_size=30))
def test_messages_and_control_frames_come_out_whole_whatever_the_chunking(cuts: list[int]) -> None:
    wire = (server_frame(TEXT, b"one")
            + server_frame(TEXT, b"fr", fin=False) + server_frame(PING, b"?")
            + server_frame(CONTINUATION, b"ag", fin=False) + server_frame(CONTINUATION, b"ment")
            + server_frame(BINARY, b"x" * 300) + server_frame(CLOSE, b"\x03\xe8bye"))
    reader, out, at = FrameReader(max_message=1000), [], 0
    for cut in cuts:
        out += reader.feed(wire[at:at + cut])
        at += cut
    out += reader.feed(wire[at:])
    assert out == [(TEXT, b"one"), (PING, b"?"), (TEXT, b"fragment"), (BINARY, b"x" * 300),
                   (CLOSE, b"\x03\xe8bye")]


@pytest.mark.parametrize(("wire", "code"), [
    (bytes((0x81, 0x81)) + b"keyx", 1002),  # a masked server frame
    (server_frame(TEXT, b"a", rsv=0x40), 1002),  # reserved bits without an extension
    (server_frame(CONTINUATION, b"a"), 1002),  # a continuation with nothing to continue
    (server_frame(TEXT, b"a", fin=False) + server_frame(TEXT, b"b"), 1002),  # a new message mid-way
    (server_frame(PING, b"a", fin=False), 1002),  # a fragmented control frame
    (server_frame(PING, b"a" * 126), 1002),  # a long control frame
    (server_frame(0x3, b"a"), 1002),  # an unknown opcode
    (server_frame(TEXT, b"a" * 101)[:4], 1009),  # too big: known from the header alone
    (server_frame(TEXT, b"a" * 60, fin=False) + server_frame(CONTINUATION, b"a" * 60), 1009),
])
def test_violations_name_the_close_code(wire: bytes, code: int) -> None:
    with pytest.raises(ProtocolViolation) as info:
        FrameReader(max_message=100).feed(wire)
    assert info.value.code == code
