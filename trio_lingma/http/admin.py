"""Operator endpoints: ``/metrics``, ``/admin/usage``, ``/admin/status``, ``/admin/drain``,
``/debug/tasks``.

Everything but ``/metrics`` needs ``ADMIN_KEY`` (as ``Authorization: Bearer`` or
``x-api-key``); with no ADMIN_KEY configured those endpoints answer 403 and say how to enable
them. ``/metrics`` is open unless ``METRICS_REQUIRE_ADMIN=true``.
"""

from __future__ import annotations

import os
import signal
from typing import Any, cast

import attrs
from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from ..errors import GatewayError, PermissionDenied
from ..observability.metrics import CONTENT_TYPE
from ..observability.tasks import format_tree, task_tree
from .common import gateway, presents_admin_key
from .openai_api import render_error

__all__ = ["blueprint", "require_admin"]

blueprint = Blueprint("admin", __name__)


def require_admin() -> None:
    if not gateway().settings.admin_key:
        raise PermissionDenied("Admin endpoints are disabled: set ADMIN_KEY to enable them.")
    if not presents_admin_key():
        raise PermissionDenied("This endpoint needs the admin key (ADMIN_KEY).")


@blueprint.errorhandler(GatewayError)
async def _error(exc: GatewayError) -> Response:
    return render_error(exc)


@blueprint.get("/metrics")
async def metrics() -> Any:
    if gateway().settings.metrics_require_admin:
        require_admin()
    body = current_app.extensions["trio_lingma.metrics"].render()
    return Response(body, content_type=CONTENT_TYPE)


@blueprint.get("/admin/usage")
async def usage() -> Any:
    require_admin()
    return current_app.extensions["trio_lingma.usage"].snapshot()


@blueprint.get("/admin/status")
async def status() -> Any:
    require_admin()
    return _jsonable(gateway().statistics())


@blueprint.post("/admin/drain")
async def drain() -> Any:
    """Stop admitting, let requests finish (up to DRAIN_TIMEOUT), then stop the process with
    SIGTERM — the same path as a SIGTERM from outside (``trio-lingma serve`` or hypercorn)."""
    require_admin()
    gw = gateway()
    already = gw.draining
    gw.start_drain()
    if not already:
        app = cast(QuartTrio, current_app)  # the lifespan nursery: the task outlives this request
        app.nursery.start_soon(_drain_then_terminate, gw, name="drain then SIGTERM")
    return {"message": f"draining: {gw.statistics().in_flight} in flight, "
                       f"stopping within {gw.settings.drain_timeout:g} s"}


async def _drain_then_terminate(gw: Any) -> None:
    await gw.drain(gw.settings.drain_timeout)
    os.kill(os.getpid(), signal.SIGTERM)


@blueprint.get("/debug/tasks")
async def tasks() -> Any:
    require_admin()
    tree = task_tree()
    if request.args.get("format") == "json":
        return tree
    return Response(format_tree(tree) + "\n", content_type="text/plain; charset=utf-8")


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value  # enums
    return value
