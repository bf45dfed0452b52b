"""Liveness and readiness.

``/readyz`` is open (probes send no key) but says only whether the gateway is ready (and
draining); the pool's detail — pids, upstream ports, error text — is for the operator and
needs ``ADMIN_KEY``. A missing or wrong key is no error here: the probe still gets its answer.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from .common import gateway, presents_admin_key

__all__ = ["blueprint"]

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Any:
    return {"status": "ok"}


@blueprint.get("/readyz")
async def readyz() -> Any:
    gw = gateway()
    ready = gw.statistics().ready > 0 and not gw.draining
    body = _detail(ready) if presents_admin_key() else {"ready": ready, "draining": gw.draining}
    return body, (200 if ready else 503)


def _detail(ready: bool) -> dict[str, Any]:
    snap = gateway().statistics()
    body: dict[str, Any] = {
        "ready": ready,
        "draining": gateway().draining,
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
    return body
