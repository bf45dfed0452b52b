"""What every route shares: the gateway handle, auth, body reading, streamed responses.

Streaming responses are admitted *before* headers are sent: :func:`open_event_stream` runs the
body generator up to the point where the turn is admitted and accepted upstream, so model,
capacity and upstream errors still become real HTTP errors. After that the generator owns the
turn; a client disconnect reaches it as ``trio.Cancelled`` and its ``async with`` exits release
everything (style.md §5, stack-notes: "the client disconnect only reaches a streaming generator
as cancellation").

A client can also go away *between* the route returning and quart-trio entering the body (while
the headers are sent, or in an after-request hook): quart-trio then cancels the request and
never closes the body, so the admitted turn would wait for the garbage collector.
:class:`StreamingHTTPConnection` (the app's ``asgi_http_class``) therefore closes the body that
:func:`open_event_stream` registered on the request, in the request's own task, shielded and
bounded, whatever ended it (a no-op when quart already closed it).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio
from hypercorn.typing import ASGISendCallable
from quart import Request, Response, current_app, request
from quart_trio.asgi import TrioASGIHTTPConnection

from ..backend.cleanup import shielded_cleanup
from ..backend.gateway import EventStream, Gateway
from ..errors import AuthenticationFailed, GatewayError, InternalError, InvalidRequest, RequestTooLarge
from ..observability.access import note_model
from ..protocol.conversation import ChatRequest

__all__ = ["StreamingHTTPConnection", "check_auth", "gateway", "json_response", "open_event_stream", "open_turn",
           "presents_admin_key", "read_json"]

log = logging.getLogger(__name__)

Renderer = Callable[[EventStream], AsyncIterator[bytes]]

#: The request attribute holding the body generator of an admitted stream (closed at the end).
_BODY = "trio_lingma_event_stream_body"
#: Bound on closing an abandoned body: the turn's own clean-up (chat/stop) is bounded by 2 s.
BODY_CLOSE_TIMEOUT = 5.0


class StreamingHTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection that also closes an event-stream body quart never entered."""

    async def handle_request(  # type: ignore[override]  # quart-trio adds the nursery, as here
            self, nursery: trio.Nursery, request: Request, send: ASGISendCallable) -> None:
        try:
            await super().handle_request(nursery, request, send)
        finally:
            body = getattr(request, _BODY, None)
            if body is not None:
                with shielded_cleanup(BODY_CLOSE_TIMEOUT):
                    await body.aclose()


def gateway() -> Gateway:
    found: Gateway = current_app.extensions["trio_lingma.gateway"]
    return found


def presented_key(headers: Any) -> str | None:
    """The API key from ``Authorization: Bearer`` or ``x-api-key``."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return str(token.strip())
    key = headers.get("x-api-key")
    return str(key) if key else None


def key_matches(candidate: str, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured key (no early exit)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found


def check_auth() -> None:
    """Raise AuthenticationFailed unless the request carries a configured key (if any)."""
    keys = gateway().settings.api_keys
    if not keys:
        return
    candidate = presented_key(request.headers)
    if candidate is None:
        raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <key>` or `x-api-key`.")
    if not key_matches(candidate, keys):
        raise AuthenticationFailed("Incorrect API key provided.")


def presents_admin_key() -> bool:
    """Whether the request carries ADMIN_KEY (never true when no ADMIN_KEY is configured)."""
    admin_key = gateway().settings.admin_key
    candidate = presented_key(request.headers)
    return bool(admin_key) and candidate is not None and key_matches(candidate, (admin_key,))


def json_response(body: Any, *, status: int = 200, retry_after: float | None = None) -> Response:
    """A JSON response with fields in the order built (each API's documented order), and
    ``Retry-After`` (whole seconds, at least 1) when the gateway knows when to come back."""
    response = Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


async def read_json() -> Any:
    """The request body as JSON; 413 above MAX_BODY_BYTES, 400 when it is not JSON."""
    limit = gateway().settings.max_body_bytes
    if (request.content_length or 0) > limit:
        raise RequestTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    raw = await request.get_data(cache=False, as_text=False)
    if len(raw) > limit:
        raise RequestTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if b"\\ud" in raw.lower():  # a \uD8xx escape: maybe a lone surrogate, which is no UTF-8
        _reject_lone_surrogates(body)
    note_model(body)
    return body


def _reject_lone_surrogates(body: Any) -> None:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("The request body contains an unpaired UTF-16 surrogate escape "
                             "(e.g. \\ud800); text must be valid Unicode.") from None


def open_turn(chat: ChatRequest) -> AbstractAsyncContextManager[EventStream]:
    """``Gateway.open_turn`` for a non-streaming route, with the caller's per-key limit."""
    return gateway().open_turn(chat, api_key=presented_key(request.headers))


async def open_event_stream(
    chat: ChatRequest, render: Renderer, on_error: Callable[[GatewayError], bytes]
) -> AsyncIterator[bytes]:
    """Admit ``chat`` now (raising GatewayError before headers); return the body iterator."""
    gw = gateway()
    api_key = presented_key(request.headers)  # read now: the body runs after the route returns

    async def body() -> AsyncIterator[bytes]:
        async with gw.open_turn(chat, api_key=api_key) as stream:
            yield b""  # admitted: headers may go out now
            try:
                async for chunk in render(stream):
                    yield chunk
            except GatewayError as exc:
                yield on_error(exc)
            except Exception as exc:  # a bug: end the stream in protocol shape, and log it
                log.exception("stream failed")
                yield on_error(InternalError(f"internal error: {type(exc).__name__}"))

    generator = body()
    await generator.__anext__()
    setattr(request, _BODY, generator)  # noqa: B010 - closed by StreamingHTTPConnection
    return generator
