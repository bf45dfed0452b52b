"""The access log: one INFO line per request, written when the response has ended.

A request's :class:`Exchange` lives in a context variable set by the ASGI layer
(``http/served.py``) before the app runs. trio copies the context into the tasks quart-trio
spawns, so they all see the *same* mutable record: the routes, the after-request hook and the
gateway's turn observer note what they know (route template, model, how the turn ended), the
ASGI layer notes status and error body, and writes the line once the last byte went out — for a
stream, when the stream ended. The line carries no API key and no prompt text: the model name
and error messages are cut with :func:`~trio_lingma.errors.shorten`.
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import GatewayError, shorten

if TYPE_CHECKING:
    from ..backend.gateway import TurnReport

__all__ = ["Exchange", "current_exchange", "error_summary", "format_line", "log", "note_model", "observe_turn",
           "start_exchange"]

log = logging.getLogger("trio_lingma.access")

_exchange: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("exchange", default=None)

#: The largest error body read to name the error in the log line.
MAX_ERROR_BODY = 16 * 1024


@attrs.define(kw_only=True)
class Exchange:
    """What is known about one request so far (mutable: several tasks fill it in)."""

    method: str
    path: str
    route: str | None = None  # the route template; None when no route matched
    status: int | None = None
    model: str | None = None
    error: str | None = None  # "type: message" from an error body
    stream: bool = False  # the response is text/event-stream
    finished: bool = False  # the last body byte was sent
    turn_ok: bool | None = None  # how the upstream turn ended, when there was one
    refusal: GatewayError | None = None  # the app must answer with this instead of routing,
    spared: frozenset[str] = frozenset()  # ... unless the route is in one of these blueprints


def start_exchange(method: str, path: str) -> Exchange:
    """A new record for the current request, visible to every task it spawns from now on."""
    exchange = Exchange(method=method, path=path)
    _exchange.set(exchange)
    return exchange


def current_exchange() -> Exchange | None:
    """The record of the request this task works for (None outside a request)."""
    return _exchange.get()


def note_model(body: Any) -> None:
    """Note the ``model`` a request body names (cut short), for the access line."""
    exchange = _exchange.get()
    if exchange is not None and isinstance(body, dict) and isinstance(body.get("model"), str):
        exchange.model = shorten(body["model"], 100)


def observe_turn(report: TurnReport) -> None:
    """A ``Gateway.observers`` callback: it runs in the request's task when its turn ends."""
    exchange = _exchange.get()
    if exchange is not None:
        exchange.model = shorten(report.model, 100)
        exchange.turn_ok = report.ok


def error_summary(body: bytes) -> str | None:
    """``type: message`` from an OpenAI- or Anthropic-shaped error body, else None."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    kind, message = error.get("type"), error.get("message")
    return f"{shorten(str(kind), 60)}: {shorten(str(message), 200)}"


def format_line(exchange: Exchange, duration: float) -> str:
    """``POST /v1/chat/completions 200 12.3ms model=… [stream=…] [error=…]``."""
    route = exchange.route or shorten(exchange.path, 100)
    status = exchange.status if exchange.status is not None else "-"
    parts = [f"{exchange.method} {route} {status} {duration * 1000:.1f}ms"]
    if exchange.model:
        parts.append(f"model={exchange.model}")
    if exchange.stream:
        parts.append(f"stream={_stream_outcome(exchange)}")
    if exchange.error and (exchange.status or 0) >= 400:
        parts.append(f"error={exchange.error}")
    return " ".join(parts)


def _stream_outcome(exchange: Exchange) -> str:
    if not exchange.finished:
        return "disconnected"  # the client went away (or the server stopped) mid-stream
    return "failed" if exchange.turn_ok is False else "completed"
