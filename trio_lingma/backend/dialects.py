"""The Lingma dialects by name (``LINGMA_DIALECT``), the handshake, and auto-detection.

Theory of operation
-------------------
``legacy`` (``chat/*``, §3A) and ``acp`` (``session/*``, §3B) are each an ``initialize``
function that speaks the dialect's ``initialize`` over a fresh client connection and returns a
:class:`Connection`: the dialect bound to that connection, with one interface (ping, open a
turn, stop, delete a session). An instance holds that object for one life and never asks which
dialect it is; it dies with the connection, so nothing keeps per-connection state elsewhere.

:func:`handshake` is the one handshake sequence: the dialect's ``initialize`` step, then
``auth/status`` and ``config/queryModels``, the same in every dialect (§2.2, §5), all under one
deadline.

``auto`` (:func:`detect`) decides per connection, with one rule: **legacy unless the runtime
answers ``session/new``**. It sends one ``initialize`` carrying both parameter styles (LSP
``rootUri``/``workspaceFolders`` and ACP ``protocolVersion``, 2 then 1 like the ACP dialect;
real binaries accepted each style, §2.1), then probes ``session/new``: a session id means ACP
(the probe session is deleted at once); -32601 or any other error means legacy. A runtime
serving both families (OC saw legacy callbacks inside ACP turns) is therefore driven as ACP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import trio

from .. import __version__
from ..errors import UpstreamClosed, UpstreamError, UpstreamFailed
from ..protocol import acp
from ..protocol.events import Event
from ..protocol.legacy import AUTH_LOGGED_IN, initialize_params, parse_models
from ..settings import ConfigError
from . import acp as acp_dialect
from . import legacy as legacy_dialect
from .acp import AcpConnection, DialectMismatch, initialize_versions, is_method_missing
from .client import LingmaClient
from .legacy import LegacyConnection

__all__ = [
    "DIALECTS",
    "Connection",
    "DialectMismatch",
    "Handshake",
    "Initialize",
    "Turn",
    "detect",
    "detect_dialect",
    "handshake",
    "make_dialect",
    "read_handshake",
]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Handshake:
    """What the runtime told us when we connected."""

    models: tuple[tuple[str, str, bool], ...]
    logged_in: bool
    auth_status: Any = None


class Turn(Protocol):
    """What ``open_turn`` yields (legacy ``TurnStream`` and ``AcpTurnStream``)."""

    @property
    def finished(self) -> bool: ...

    @property
    def session_id(self) -> str | None: ...

    async def receive(self) -> list[Event]: ...


class Connection(Protocol):
    """A dialect bound to one client connection, held by an instance for one life."""

    name: str
    client: LingmaClient
    #: True when a runtime without ``auth/status`` counts as logged in.
    auth_optional: bool

    async def ping(self, *, timeout: float) -> None: ...

    def open_turn(self, *, request_id: str, session_id: str, question: str, model_key: str,
                  is_reply: bool, mode: str, timeout: float) -> AbstractAsyncContextManager[Turn]: ...

    async def stop(self, request_id: str, session_id: str) -> None: ...

    async def delete_session(self, session_id: str) -> None: ...


#: A dialect: its ``initialize`` over a fresh connection (``client``, ``workdir``).
Initialize = Callable[[LingmaClient, str], Awaitable[Connection]]


async def handshake(initialize: Initialize, client: LingmaClient, workdir: str, *,
                    timeout: float) -> tuple[Connection, Handshake]:
    """The dialect's ``initialize``, then :func:`read_handshake`, within ``timeout`` seconds."""
    with trio.fail_after(timeout):
        connection = await initialize(client, workdir)
        return connection, await read_handshake(client, auth_optional=connection.auth_optional)


async def read_handshake(client: LingmaClient, *, auth_optional: bool) -> Handshake:
    """``auth/status`` and ``config/queryModels``, the same in every dialect (§2.2, §5).

    With ``auth_optional`` a runtime without ``auth/status`` is taken as logged in (an ACP
    desktop app owns the login there, and a turn fails clearly if it is not).
    """
    try:
        auth = await client.call("auth/status")
    except UpstreamFailed as exc:
        if not (auth_optional and is_method_missing(exc)):
            raise
        auth = None
    models = await client.call("config/queryModels", {})
    status = auth.get("status") if isinstance(auth, dict) else None
    logged_in = (auth is None and auth_optional) or status == AUTH_LOGGED_IN
    return Handshake(models=tuple(parse_models(models)), logged_in=logged_in, auth_status=auth)


async def detect(client: LingmaClient, workdir: str) -> Connection:
    """``LINGMA_DIALECT=auto``: one ``initialize`` in both styles, then :func:`detect_dialect`."""
    await initialize_versions(client, lambda version: _merged_initialize(workdir, version))
    found = await detect_dialect(client, workdir)
    log.info("%s: detected the %s dialect", client.name, found)
    if found == "acp":
        return AcpConnection(client, workdir)
    return LegacyConnection(client, auth_optional=True)


async def detect_dialect(client: LingmaClient, workdir: str) -> str:
    """``"acp"`` if the runtime answers ``session/new`` (the probe session is deleted), else ``"legacy"``.

    Call it after ``initialize``; it bounds nothing itself (wrap it in a deadline).
    """
    params = acp.new_session_params(workdir, now_ms=int(time.time() * 1000))
    try:
        result = await client.call("session/new", params)
    except UpstreamClosed:
        raise
    except UpstreamError as exc:
        log.info("%s: no session/new (%s): legacy dialect", client.name, exc.message)
        return "legacy"
    session_id = acp.parse_session_id(result)
    if session_id is None:
        log.info("%s: session/new returned %r: legacy dialect", client.name, result)
        return "legacy"
    await AcpConnection(client, workdir).delete_session(session_id)
    return "acp"


def _merged_initialize(workdir: str, version: int) -> dict[str, Any]:
    legacy = initialize_params(workdir, client_version=__version__)
    ours = acp.initialize_params(client_version=__version__, now_ms=int(time.time() * 1000), version=version)
    return {**legacy, **ours}


#: ``LINGMA_DIALECT`` value → its ``initialize``; one explicit table (style.md §2).
DIALECTS: dict[str, Initialize] = {
    "legacy": legacy_dialect.initialize,
    "acp": acp_dialect.initialize,
    "auto": detect,
}


def make_dialect(name: str) -> Initialize:
    """The ``initialize`` of ``LINGMA_DIALECT=name`` (ConfigError naming the variable)."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConfigError(f"LINGMA_DIALECT: must be one of {', '.join(DIALECTS)}, not {name!r}") from None
