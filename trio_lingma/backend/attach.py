"""Attach mode: each life of an instance connects to a runtime somebody else runs.

Theory of operation
-------------------
:func:`attach_connector` returns a :data:`~trio_lingma.backend.instance.Connector`, the seam an
:class:`~trio_lingma.backend.instance.Instance` already has for lives without a process. Every
life discovers the runtime afresh (:mod:`.discovery`: ``LINGMA_WS_URL``, the
``LINGMA_SHARED_CLIENT_INFO`` file or the SharedClientCache search), because an IDE that
restarts its runtime writes a new port; a runtime that is gone makes the life fail with a
clear message, and the instance's usual backoff retries. Because the instance owns no process
on this path, it never sends the runtime LSP ``shutdown``/``exit``: the IDE's runtime outlives
the gateway.

A runtime that offers a unix socket (``ipcServerPath``, or ``LINGMA_IPC_SOCKET``) is reached
over it (:func:`~trio_lingma.backend.ipc.open_ipc_transport`), as the desktop's own extension
does (IPC first, OC); if the socket refuses and the file also names a WebSocket port, the
WebSocket is used (:func:`~trio_lingma.backend.transport.open_websocket_transport`, as for a
spawned runtime).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from ..errors import UpstreamUnavailable
from ..settings import Settings
from .discovery import RuntimeEndpoint, discover_from_settings
from .ipc import open_ipc_transport
from .transport import Transport, open_websocket_transport

__all__ = ["attach_connector"]

log = logging.getLogger(__name__)


def attach_connector(
    settings: Settings, *, discover: Callable[[Settings], RuntimeEndpoint] = discover_from_settings,
) -> Callable[[Any], AbstractAsyncContextManager[Transport]]:
    """A connector for ``Instance(..., connector=...)`` that attaches to a running runtime."""

    @asynccontextmanager
    async def connect(instance: Any) -> AsyncIterator[Transport]:
        endpoint = discover(settings)
        name = getattr(instance, "name", "lingma")
        log.info("%s: attaching to the runtime at %s (pid %s, from %s)", name, endpoint.address,
                 endpoint.pid, endpoint.source)
        async with AsyncExitStack() as stack:
            yield await _open(stack, endpoint, name)

    return connect


async def _open(stack: AsyncExitStack, endpoint: RuntimeEndpoint, name: str) -> Transport:
    """The unix socket if there is one, else (or if it refuses) the WebSocket."""
    if endpoint.ipc_path:
        try:
            return await stack.enter_async_context(open_ipc_transport(endpoint.ipc_path, source=endpoint.source))
        except UpstreamUnavailable as exc:
            if not endpoint.ws_url:
                raise
            log.warning("%s: %s; trying the WebSocket", name, exc.message)
    return await stack.enter_async_context(open_websocket_transport(endpoint.ws_url, source=endpoint.source))
