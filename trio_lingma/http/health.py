"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from .common import gateway

__all__ = ["blueprint"]

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Any:
    return {"status": "ok"}


@blueprint.get("/readyz")
async def readyz() -> Any:
    snap = gateway().statistics()
    draining = gateway().draining
    ready = snap.ready > 0 and not draining
    body = {
        "ready": ready,
        "draining": draining,
        "simulator": snap.simulator,
        "in_flight": snap.in_flight,
        "queued": snap.queued,
        "sessions": {"size": snap.cache.size, "hits": snap.cache.hits, "misses": snap.cache.misses},
        "instances": [
            {"index": i.index, "state": i.state.value, "pid": i.pid, "ws_port": i.ws_port,
             "life": i.life, "in_flight": i.in_flight, "waiting": i.waiting,
             "capacity": i.capacity, "restarts": i.restarts, "logged_in": i.logged_in,
             "last_error": i.last_error}
            for i in snap.instances
        ],
    }
    if snap.simulator:
        body["warning"] = "running on the built-in Lingma simulator (LINGMA_BINARY is not set)"
    return body, (200 if ready else 503)
