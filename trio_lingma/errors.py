"""The gateway's error hierarchy: every failure says whose fault it is.

Routes and adapters raise these; each wire protocol maps them to its own status code and
error body in exactly one place (``http/errors.py``). trio and trio-websocket exceptions are
translated into these where they occur (backend), so they never reach a route.
"""

from __future__ import annotations

from typing import ClassVar

from .protocol.events import ErrorKind, StreamError

__all__ = [
    "AuthenticationFailed",
    "ClientError",
    "GatewayError",
    "InternalError",
    "InvalidRequest",
    "MessageRefused",
    "MessageTooLarge",
    "ModelNotFound",
    "NotFound",
    "Overloaded",
    "PermissionDenied",
    "PreviousResponseNotFound",
    "QueueFull",
    "QueueTimeout",
    "RequestTooLarge",
    "UpstreamClosed",
    "UpstreamError",
    "UpstreamFailed",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_from_event",
    "shorten",
]

#: The longest error message the gateway sends; longer ones (a huge value echoed by a
#: message that forgot :func:`shorten`) are cut. Every echo site should use ``shorten`` itself.
MAX_MESSAGE_CHARS = 2000


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut: use it wherever a
    value the client sent (a model name, a path, a tool name) is echoed in an error or a log."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


#: ``Retry-After`` (seconds) of a 429 or 503 raised without an estimate of its own.
DEFAULT_RETRY_AFTER = 1.0


class GatewayError(Exception):
    """Base class. ``status`` is the HTTP status; ``code`` a stable machine-readable code."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, retry_after: float | None = None
    ) -> None:
        message = shorten(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.param = param
        if retry_after is None and self.status in (429, 503):  # every 429/503 says when to come back
            retry_after = DEFAULT_RETRY_AFTER
        self.retry_after = retry_after


class ClientError(GatewayError):
    """The request is at fault."""

    status = 400
    code = "invalid_request"


class InvalidRequest(ClientError):
    pass


class PreviousResponseNotFound(InvalidRequest):
    """A Responses request continues a response the gateway does not hold (400, as OpenAI)."""

    code = "previous_response_not_found"


class AuthenticationFailed(ClientError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    code = "permission_denied"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RequestTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class MessageTooLarge(RequestTooLarge):
    """The request would make a Lingma message over ``LINGMA_MAX_MESSAGE_BYTES``: refused before
    anything was sent (a runtime drops the whole connection on a message over its limit)."""

    code = "message_too_large"


class QueueFull(GatewayError):
    """The admission queue is full: try again later (429)."""

    status = 429
    code = "rate_limit_exceeded"


class Overloaded(GatewayError):
    """No capacity now (503)."""

    status = 503
    code = "overloaded"


class QueueTimeout(Overloaded):
    code = "queue_timeout"


class UpstreamError(GatewayError):
    """Lingma is at fault."""

    status = 502
    code = "upstream_error"


class UpstreamFailed(UpstreamError):
    """Lingma answered the turn with a failure (chat/finish statusCode != 200)."""


class UpstreamClosed(UpstreamError):
    """The runtime died or closed the connection mid-request."""

    code = "upstream_closed"


class MessageRefused(UpstreamClosed):
    """The runtime dropped the connection over a message too big for it (WebSocket 1009) while
    this call waited: never retried elsewhere, where the same message would do the same."""

    code = "upstream_message_refused"


class UpstreamUnavailable(UpstreamError):
    """No Lingma instance is ready."""

    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class InternalError(GatewayError):
    pass


_BY_KIND: dict[ErrorKind, type[GatewayError]] = {
    ErrorKind.UPSTREAM_ERROR: UpstreamFailed,
    ErrorKind.UPSTREAM_CLOSED: UpstreamClosed,
    ErrorKind.UPSTREAM_TIMEOUT: UpstreamTimeout,
    ErrorKind.OVERLOADED: Overloaded,
    ErrorKind.INTERNAL: InternalError,
}

_KIND_OF: dict[type[GatewayError], ErrorKind] = {v: k for k, v in _BY_KIND.items()}


def error_from_event(event: StreamError) -> GatewayError:
    """The exception a non-streaming response raises for a terminal stream error."""
    return _BY_KIND[event.kind](event.message)


def event_from_error(exc: GatewayError) -> StreamError:
    """The terminal stream event for an exception raised after headers were sent."""
    for cls in type(exc).__mro__:
        if cls in _KIND_OF:
            return StreamError(kind=_KIND_OF[cls], message=exc.message)
    if isinstance(exc, (UpstreamUnavailable, UpstreamError)):
        return StreamError(kind=ErrorKind.UPSTREAM_ERROR, message=exc.message)
    return StreamError(kind=ErrorKind.INTERNAL, message=exc.message)
