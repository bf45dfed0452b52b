"""Logging: plain or JSON lines, each carrying the request id of the request it belongs to.

The request id lives in a context variable set when a request starts (the incoming
``x-request-id`` when it is sane, else a new ``req_…``); trio copies context into tasks, so
lines logged by the request's task and by what it calls carry it. Nothing here logs API keys or
prompt text; only DEBUG lines elsewhere may contain upstream text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid

__all__ = ["configure_logging", "current_request_id", "new_request_id", "set_request_id"]

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id(incoming: str | None = None) -> str:
    """The incoming id when it is short and plain (no log injection), else a fresh one."""
    if incoming and _SANE_ID.match(incoming):
        return incoming
    return f"req_{uuid.uuid4().hex[:24]}"


def set_request_id(value: str) -> None:
    _request_id.set(value)


def current_request_id() -> str:
    return _request_id.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message (and exc_info)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str, fmt: str) -> None:
    """Root logging for the gateway process (``fmt``: ``plain`` or ``json``)."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
