"""Sans-IO JSON-RPC 2.0 over Lingma's framing.

Theory of operation
-------------------
Lingma writes every JSON-RPC message as ``Content-Length: N\\r\\n\\r\\n<json>`` (N counts
UTF-8 *bytes*, not characters) and sends each framed message as one WebSocket text frame
(lingma-protocol.md §1.5). Readers must still buffer across frames and accept several
messages in one frame. Unframed JSON is rejected by the real binary ("Unknown message
header"), so :class:`FrameDecoder` raises :class:`FramingError` on it.

:class:`Peer` is one end of a JSON-RPC connection in either role. It allocates request ids,
remembers which of its requests are pending, and turns incoming bytes into typed messages.
It performs no I/O and imports nothing asynchronous: feed it what the transport received,
send what it returns.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from .jsonutil import compact_json

__all__ = [
    "ErrorResponse",
    "FrameDecoder",
    "FrameTooLarge",
    "FramingError",
    "Invalid",
    "Message",
    "Notification",
    "Peer",
    "Received",
    "ProtocolError",
    "Request",
    "Response",
    "RpcError",
    "encode_frame",
    "parse_message",
    "serialize",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_HEADER_END = b"\r\n\r\n"
_MAX_HEADER = 1024


class ProtocolError(Exception):
    """The peer broke JSON-RPC or the framing rules."""


class FramingError(ProtocolError):
    """Bytes that are not ``Content-Length`` framed (Lingma: "Unknown message header").

    Messages that were complete *before* the bad bytes in the same feed are not lost: the
    decoder puts their bodies in :attr:`bodies`, :meth:`Peer.receive_data` the parsed messages
    in :attr:`messages`; handle them as if ``receive_data`` had returned them.
    """

    bodies: tuple[bytes, ...] = ()
    messages: tuple[Received, ...] = ()


class FrameTooLarge(ProtocolError):
    """A message we were about to send is over the peer's limit (nothing was sent)."""

    def __init__(self, method: str, size: int, limit: int) -> None:
        super().__init__(f"{method}: a {size}-byte message is over the limit of {limit} bytes")
        self.method = method
        self.size = size
        self.limit = limit


@attrs.frozen(kw_only=True)
class RpcError:
    """A JSON-RPC error object."""

    code: int
    message: str
    data: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


@attrs.frozen(kw_only=True)
class Request:
    """A call that expects an answer (``method`` and ``id``)."""

    id: int | str
    method: str
    params: Any = None


@attrs.frozen(kw_only=True)
class Notification:
    """A call without ``id``: nobody answers it."""

    method: str
    params: Any = None


@attrs.frozen(kw_only=True)
class Response:
    """A successful answer to one of our requests. ``method`` is filled in by :class:`Peer`."""

    id: int | str
    result: Any = None
    method: str | None = None


@attrs.frozen(kw_only=True)
class ErrorResponse:
    """A failed answer. ``id`` is None when the peer could not read our request."""

    id: int | str | None
    error: RpcError
    method: str | None = None


@attrs.frozen(kw_only=True)
class Invalid:
    """A complete frame whose body is not a JSON-RPC message (kept so others still flow)."""

    reason: str
    body: bytes = b""


Message = Request | Notification | Response | ErrorResponse
Received = Message | Invalid


def _header(length: int) -> str:
    return f"Content-Length: {length}\r\n\r\n"


def encode_frame(body: bytes) -> str:
    """Frame one serialized message for one WebSocket text frame."""
    return _header(len(body)) + body.decode("utf-8")


class FrameDecoder:
    """Reassembles framed messages from arbitrary chunks of text or bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: str | bytes) -> list[bytes]:
        """Add received data; return the bodies of every message now complete."""
        self._buffer += data.encode("utf-8") if isinstance(data, str) else data
        bodies: list[bytes] = []
        try:
            while (body := self._next_body()) is not None:
                bodies.append(body)
        except FramingError as exc:
            exc.bodies = tuple(bodies)
            raise
        return bodies

    def _next_body(self) -> bytes | None:
        buf = self._buffer
        # Lingma never puts whitespace between messages, but tolerate stray line ends.
        while buf[:2] == b"\r\n":
            del buf[:2]
        if not buf:
            return None
        end = buf.find(_HEADER_END)
        if end < 0:
            self._check_partial_header()
            return None
        if not buf[:1].isalpha():
            self._buffer.clear()
            raise FramingError("Unknown message header")
        try:
            length = _content_length(bytes(buf[:end]))
        except FramingError:
            self._buffer.clear()
            raise
        start = end + len(_HEADER_END)
        if len(buf) - start < length:
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        return body

    def _check_partial_header(self) -> None:
        # A header starts with a field name; JSON starts with "{" or "[".
        if self._buffer == b"\r":  # half of a tolerated line end between messages
            return
        if not self._buffer[:1].isalpha():
            self._buffer.clear()
            raise FramingError("Unknown message header")
        if len(self._buffer) > _MAX_HEADER:
            self._buffer.clear()
            raise FramingError("message header too long")


def _content_length(header: bytes) -> int:
    length: int | None = None
    for line in header.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            raise FramingError("Unknown message header")
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit():  # ASCII digits only: no sign, "_" or other scripts' digits
                raise FramingError(f"bad Content-Length {value!r}")
            length = int(value)
    if length is None or length < 0:
        raise FramingError("Unknown message header")
    return length


def parse_message(body: bytes) -> Message:
    """Classify one JSON-RPC message body."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, huge ints, deep nesting
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a JSON-RPC message must be an object")
    method = obj.get("method")
    has_id = "id" in obj and obj["id"] is not None
    if method is not None:
        if not isinstance(method, str):
            raise ProtocolError("method must be a string")
        if has_id:
            return Request(id=_check_id(obj["id"]), method=method, params=obj.get("params"))
        return Notification(method=method, params=obj.get("params"))
    if "error" in obj and obj["error"] is not None:
        id_ = obj.get("id")
        return ErrorResponse(
            id=None if id_ is None else _check_id(id_), error=_parse_error(obj["error"])
        )
    if has_id:
        return Response(id=_check_id(obj["id"]), result=obj.get("result"))
    raise ProtocolError("message is neither a request, a notification nor a response")


def _check_id(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ProtocolError(f"invalid id {value!r}")
    return value


def _parse_error(err: Any) -> RpcError:
    if not isinstance(err, dict):
        return RpcError(code=INTERNAL_ERROR, message=str(err))
    code = err.get("code")
    return RpcError(
        code=code if isinstance(code, int) else INTERNAL_ERROR,
        message=str(err.get("message", "")),
        data=err.get("data"),
    )


def serialize(msg: Message) -> bytes:
    """The JSON body of a message (``"jsonrpc": "2.0"`` always explicit).

    A call without parameters carries ``"params": {}``, never none: the Go runtime decodes
    params into a struct and answered other shapes with ``json: cannot unmarshal array into Go
    value of type struct {}``; both public clients always send ``{}`` (OC, LP; §11).
    """
    out: dict[str, Any] = {"jsonrpc": "2.0"}
    match msg:
        case Request(id=id_, method=method, params=params):
            out.update(id=id_, method=method, params={} if params is None else params)
        case Notification(method=method, params=params):
            out.update(method=method, params={} if params is None else params)
        case Response(id=id_, result=result):
            out.update(id=id_, result=result)
        case ErrorResponse(id=id_, error=error):
            out.update(id=id_, error=error.to_json())
    return compact_json(out).encode("utf-8")


class Peer:
    """One end of a framed JSON-RPC connection, in the client or the server role."""

    def __init__(self, *, first_id: int = 1, max_message_bytes: int | None = None) -> None:
        self._decoder = FrameDecoder()
        self._next_id = first_id
        self._pending: dict[int | str, str] = {}
        #: Largest framed request or notification we send (None: no limit); see :meth:`send_request`.
        self.max_message_bytes = max_message_bytes

    def __repr__(self) -> str:
        return f"<Peer pending={len(self._pending)} next_id={self._next_id}>"

    @property
    def pending(self) -> dict[int | str, str]:
        """Our requests still waiting for an answer: id → method (a copy)."""
        return dict(self._pending)

    def send_request(self, method: str, params: Any = None) -> tuple[int, str]:
        """Allocate an id; return it and the frame to send.

        Raises :class:`FrameTooLarge` (allocating nothing) when the framed message would be
        over :attr:`max_message_bytes`: a runtime closes the whole connection on a message
        over its limit (WebSocket 1009), so such a request must never leave.
        """
        id_ = self._next_id
        frame = self._checked(method, serialize(Request(id=id_, method=method, params=params)))
        self._next_id += 1
        self._pending[id_] = method
        return id_, frame

    def send_notification(self, method: str, params: Any = None) -> str:
        return self._checked(method, serialize(Notification(method=method, params=params)))

    def _checked(self, method: str, body: bytes) -> str:
        limit = self.max_message_bytes
        if limit is not None:
            size = len(_header(len(body))) + len(body)
            if size > limit:
                raise FrameTooLarge(method, size, limit)
        return encode_frame(body)

    def send_result(self, id_: int | str, result: Any) -> str:
        return encode_frame(serialize(Response(id=id_, result=result)))

    def send_error(
        self, id_: int | str | None, code: int, message: str, data: Any = None
    ) -> str:
        error = RpcError(code=code, message=message, data=data)
        return encode_frame(serialize(ErrorResponse(id=id_, error=error)))

    def forget(self, id_: int | str) -> None:
        """Stop waiting for an answer (the caller gave up); a late answer is then unmatched."""
        self._pending.pop(id_, None)

    def receive_data(self, data: str | bytes) -> list[Received]:
        """Feed received data; return the complete messages, answers matched to our requests.

        A body that is not JSON-RPC comes back as :class:`Invalid` (the messages around it
        still flow). Raises :class:`FramingError` on unframed input, after which the decoder
        has dropped its buffer and is ready for the next frame; messages that came before the
        bad bytes are in the exception's ``messages``.
        """
        try:
            bodies = self._decoder.feed(data)
        except FramingError as exc:
            exc.messages = tuple(self._match(body) for body in exc.bodies)
            raise
        return [self._match(body) for body in bodies]

    def _match(self, body: bytes) -> Received:
        try:
            msg = parse_message(body)
        except ProtocolError as exc:
            return Invalid(reason=str(exc), body=body)
        if isinstance(msg, (Response, ErrorResponse)) and msg.id is not None:
            method = self._pending.pop(msg.id, None)
            return attrs.evolve(msg, method=method)
        return msg
