"""The Lingma dialects by name (``LINGMA_DIALECT``), and auto-detection at handshake.

Theory of operation
-------------------
``legacy`` (``chat/*``, §3A) and ``acp`` (``session/*``, §3B) have the same interface
(:class:`Dialect`), so an instance holds one object and never asks which it is.

``auto`` decides per connection, during the handshake, with one rule: **legacy unless the
runtime answers ``session/new``**. It sends one ``initialize`` carrying both parameter styles
(LSP ``rootUri``/``workspaceFolders`` and ACP ``protocolVersion``; real binaries accepted each
style, §2.1), then probes ``session/new``: a session id means ACP (the probe session is deleted
at once); -32601 or any other error means legacy. A runtime serving both families (OC saw
legacy callbacks inside ACP turns) is therefore driven as ACP.

:func:`handshake` is the one handshake sequence: the dialect's own ``initialize`` step, then
``auth/status`` and ``config/queryModels``, the same in every dialect (§2.2, §5), all under one
deadline.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
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
from .acp import AcpDialect, DialectMismatch, is_method_missing
from .client import LingmaClient
from .legacy import LegacyDialect

__all__ = [
    "DIALECTS",
    "AutoDialect",
    "Dialect",
    "DialectMismatch",
    "Handshake",
    "Turn",
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


class Dialect(Protocol):
    """The interface every dialect offers an instance and the gateway."""

    name: str
    #: True when a runtime without ``auth/status`` counts as logged in.
    auth_optional: bool

    async def initialize(self, client: LingmaClient, workdir: str) -> None: ...

    async def ping(self, client: LingmaClient, *, timeout: float) -> None: ...

    def open_turn(self, client: LingmaClient, *, request_id: str, session_id: str, question: str,
                  model_key: str, is_reply: bool, mode: str,
                  timeout: float) -> AbstractAsyncContextManager[Turn]: ...

    async def stop(self, client: LingmaClient, request_id: str, session_id: str) -> None: ...

    async def delete_session(self, client: LingmaClient, session_id: str) -> None: ...


async def handshake(dialect: Dialect, client: LingmaClient, workdir: str, *, timeout: float) -> Handshake:
    """The dialect's ``initialize``, then :func:`read_handshake`, within ``timeout`` seconds."""
    with trio.fail_after(timeout):
        await dialect.initialize(client, workdir)
        return await read_handshake(client, auth_optional=dialect.auth_optional)


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
    await AcpDialect().delete_session(client, session_id)
    return "acp"


def _merged_initialize(workdir: str) -> dict[str, object]:
    legacy = initialize_params(workdir, client_version=__version__)
    ours = acp.initialize_params(client_version=__version__, now_ms=int(time.time() * 1000))
    return {**legacy, **ours}


class AutoDialect:
    """Detects the dialect of each connection at handshake, then delegates to it."""

    name = "auto"
    auth_optional = True

    def __init__(self) -> None:
        self.legacy = LegacyDialect()
        self.acp = AcpDialect()
        self._chosen: weakref.WeakKeyDictionary[LingmaClient, Dialect] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<AutoDialect connections={len(self._chosen)}>"

    def chosen(self, client: LingmaClient) -> Dialect:
        """The dialect detected for ``client`` (legacy before its handshake)."""
        return self._chosen.get(client, self.legacy)

    async def initialize(self, client: LingmaClient, workdir: str) -> None:
        await client.call("initialize", _merged_initialize(workdir))
        found = await detect_dialect(client, workdir)
        if found == "acp":
            self.acp.attach(client, workdir)
        self._chosen[client] = self.acp if found == "acp" else self.legacy
        log.info("%s: detected the %s dialect", client.name, found)

    async def ping(self, client: LingmaClient, *, timeout: float) -> None:
        await self.chosen(client).ping(client, timeout=timeout)

    def open_turn(self, client: LingmaClient, *, request_id: str, session_id: str, question: str,
                  model_key: str, is_reply: bool, mode: str,
                  timeout: float) -> AbstractAsyncContextManager[Turn]:
        return self.chosen(client).open_turn(
            client, request_id=request_id, session_id=session_id, question=question,
            model_key=model_key, is_reply=is_reply, mode=mode, timeout=timeout)

    async def stop(self, client: LingmaClient, request_id: str, session_id: str) -> None:
        await self.chosen(client).stop(client, request_id, session_id)

    async def delete_session(self, client: LingmaClient, session_id: str) -> None:
        await self.chosen(client).delete_session(client, session_id)


#: ``LINGMA_DIALECT`` value → factory; one explicit table (style.md §2).
DIALECTS: dict[str, Callable[[], Dialect]] = {
    "legacy": LegacyDialect,
    "acp": AcpDialect,
    "auto": AutoDialect,
}


def make_dialect(name: str) -> Dialect:
    """A fresh dialect object for ``LINGMA_DIALECT=name`` (ConfigError naming the variable)."""
    try:
        factory = DIALECTS[name]
    except KeyError:
        raise ConfigError(f"LINGMA_DIALECT: must be one of {', '.join(DIALECTS)}, not {name!r}") from None
    return factory()
