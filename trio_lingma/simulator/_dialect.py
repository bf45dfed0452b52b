"""The seam between one WebSocket connection and a protocol dialect (legacy now, ACP later).

A dialect turns each incoming request into a :class:`Reply` synchronously, so the answer
goes out at once (the real binary answers ``chat/ask`` before it streams); long work such as
a whole chat turn runs afterwards as ``Reply.then`` in the request's own task, which keeps
dispatch non-blocking (lingma-protocol.md §7: one task per incoming message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..protocol.jsonrpc import Notification, Request

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Dialect", "Reply", "RpcFailure"]


class RpcFailure(Exception):
    """Answer the request with a JSON-RPC error instead of a result."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@attrs.frozen
class Reply:
    """The result to send now, and optional work to run once it has been sent."""

    result: Any = None
    then: Callable[[], Awaitable[None]] | None = None
    #: Send nothing now: ``then`` answers later with ``Connection.respond`` (ACP's
    #: ``session/prompt`` is answered only when its turn ends, lingma-protocol.md §3B.3).
    deferred: bool = False


class Dialect(Protocol):
    def handle_request(self, conn: Connection, request: Request) -> Reply:
        """Answer one request (raise :class:`RpcFailure` for an error answer)."""
        ...

    def handle_notification(self, conn: Connection, note: Notification) -> None:
        """React to a notification; nothing is ever sent back."""
        ...
