"""Sans-IO WebSocket framing (RFC 6455 §5) for the client end of the runtime's connection.

Theory of operation
-------------------
At streaming rates the runtime sends one small text frame per push and we answer each with one,
so per-frame cost is per-event cost (issue 15). This module does the little the client role
needs, with no extensions negotiated: :func:`encode` makes one masked frame (§5.3: a client masks
every frame; the caller passes the 4-byte key, so keys can come from a pool instead of one
``os.urandom`` syscall per frame), and :class:`FrameReader` turns received bytes into whole
messages and control frames. It enforces what a client must: server frames unmasked, no RSV bits, control frames short
and unfragmented, continuation frames only inside a fragmented message, and a message size
limit; a violation raises :class:`ProtocolViolation` with the close code to send (1002, 1009).
"""

from __future__ import annotations

__all__ = ["BINARY", "CLOSE", "CONTINUATION", "FrameReader", "PING", "PONG", "ProtocolViolation",
           "TEXT", "encode"]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)
PROTOCOL_ERROR, MESSAGE_TOO_BIG = 1002, 1009


class ProtocolViolation(Exception):
    """The server broke the framing rules; close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def encode(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final frame of ``opcode`` carrying ``payload``, masked with the 4-byte ``key``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + key + _mask(payload, key)


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(keys, "little")).to_bytes(n, "little")


class FrameReader:
    """Received bytes in; ``(opcode, payload)`` of whole messages and control frames out."""

    def __init__(self, max_message: int) -> None:
        self._max_message = max_message
        self._buffer = bytearray()
        self._parts: list[bytes] = []  # a fragmented message so far
        self._size = 0
        self._opcode: int | None = None  # of the message being reassembled

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Every message and control frame completed by ``data``, in order."""
        self._buffer += data
        out: list[tuple[int, bytes]] = []
        while (frame := self._next_frame()) is not None:
            fin, opcode, payload = frame
            if opcode in _CONTROL:
                out.append((opcode, payload))
            else:
                message = self._assemble(fin, opcode, payload)
                if message is not None:
                    out.append(message)
        return out

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode, length, start = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F, 2
        if b0 & 0x70 or b1 & 0x80:
            raise ProtocolViolation(PROTOCOL_ERROR, "reserved bits set" if b0 & 0x70 else "masked server frame")
        if length == 126:
            if len(buf) < 4:
                return None
            length, start = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, start = int.from_bytes(buf[2:10], "big"), 10
        self._check(fin, opcode, length)
        end = start + length
        if len(buf) < end:
            return None
        payload = bytes(buf[start:end])
        del buf[:end]
        return fin, opcode, payload

    def _check(self, fin: bool, opcode: int, length: int) -> None:
        if opcode in _CONTROL:
            if not fin or length > 125:
                raise ProtocolViolation(PROTOCOL_ERROR, "fragmented or long control frame")
        elif opcode not in (CONTINUATION, *_DATA):
            raise ProtocolViolation(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        elif (opcode == CONTINUATION) != (self._opcode is not None):
            raise ProtocolViolation(PROTOCOL_ERROR, "unexpected continuation frame state")
        elif self._size + length > self._max_message:
            raise ProtocolViolation(MESSAGE_TOO_BIG, f"message over {self._max_message} bytes")

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, bytes] | None:
        if fin and self._opcode is None:
            return opcode, payload  # the common case: one frame, one message
        if self._opcode is None:
            self._opcode = opcode
        self._parts.append(payload)
        self._size += len(payload)
        if not fin:
            return None
        message = (self._opcode, b"".join(self._parts))
        self._parts, self._size, self._opcode = [], 0, None
        return message
