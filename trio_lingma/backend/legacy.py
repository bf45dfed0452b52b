"""The legacy ``chat/*`` dialect carried out over a :class:`LingmaClient`.

The decisions (params, push → event translation) live in :mod:`trio_lingma.protocol.legacy`;
this module only performs the calls. A turn that is left before ``chat/finish`` (client went
away, deadline, gateway shutdown) sends ``chat/stop`` upstream, shielded and time-bounded,
so Lingma stops generating for nobody and shutdown can never hang on it. That includes a
``chat/ask`` whose answer never came (the caller was cancelled or the call timed out): Lingma
may have accepted it and be generating already, so it is stopped too — a refusal (a JSON-RPC
error or ``isSuccess: false``), a question never sent (too large) or a closed connection needs
no stop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from .. import __version__
from ..errors import UpstreamError, UpstreamFailed, UpstreamTimeout
from ..protocol.events import Event
from ..protocol.legacy import LegacyTurn, ask_accepted, ask_params, initialize_params
from .cleanup import shielded_cleanup
from .client import LingmaClient, take_queued

__all__ = ["LegacyConnection", "TurnStream", "initialize"]

log = logging.getLogger(__name__)


class TurnStream:
    """The events of one turn, read from the turn's push channel."""

    def __init__(self, client: LingmaClient, pushes: trio.MemoryReceiveChannel[Any], turn: LegacyTurn) -> None:
        self._client = client
        self._pushes = pushes
        self._turn = turn

    @property
    def finished(self) -> bool:
        return self._turn.finished

    @property
    def session_id(self) -> str | None:
        return self._turn.session_id

    async def receive(self) -> list[Event]:
        """The next non-empty batch of events; raises when the stream broke.

        A batch holds every push already queued, so a consumer that fell behind catches up
        with one write instead of one per push.
        """
        while True:
            try:
                push = await self._pushes.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise self._client.turn_lost() from None
            events = self._turn.feed(push.method, push.params)
            events += take_queued(self._pushes, self._turn.feed, lambda: self._turn.finished)
            if events:
                return events


def _may_be_answering(exc: BaseException) -> bool:
    """After ``chat/ask`` raised ``exc``: may Lingma have the question (cancelled, timed out)?"""
    return isinstance(exc, UpstreamTimeout) or not isinstance(exc, Exception)


async def initialize(client: LingmaClient, workdir: str) -> LegacyConnection:
    """LSP-style ``initialize`` (never ``initialized``, §2.1): the connection now speaks legacy."""
    await client.call("initialize", initialize_params(workdir, client_version=__version__))
    return LegacyConnection(client)


class LegacyConnection:
    """``chat/ask`` / ``chat/stop`` over one connection (lingma-protocol.md §2, §3A)."""

    name = "legacy"

    def __init__(self, client: LingmaClient, *, auth_optional: bool = False) -> None:
        self.client = client
        #: A legacy runtime always answers ``auth/status``; a missing method fails the handshake
        #: (auto-detection, which also spoke ACP's initialize, is as lenient as ACP).
        self.auth_optional = auth_optional

    def __repr__(self) -> str:
        return f"<LegacyConnection {self.client.name}>"

    async def ping(self, *, timeout: float) -> None:
        await self.client.ping(timeout=timeout)

    @asynccontextmanager
    async def open_turn(
        self,
        *,
        request_id: str,
        session_id: str,
        question: str,
        model_key: str,
        is_reply: bool,
        mode: str,
        timeout: float,
    ) -> AsyncIterator[TurnStream]:
        params = ask_params(
            request_id=request_id, session_id=session_id, question=question,
            model_key=model_key, is_reply=is_reply, mode=mode,
        )
        client = self.client
        with client.subscribe(request_id) as pushes:
            try:
                result = await client.call("chat/ask", params, timeout=timeout)
            except BaseException as exc:
                if _may_be_answering(exc) and not client.closed:
                    await self.stop(request_id, session_id)
                raise
            ok, why = ask_accepted(result)
            if not ok:
                raise UpstreamFailed(f"Lingma refused the question: {why or 'no reason given'}")
            turn = LegacyTurn(request_id)
            turn.session_id = session_id or None
            try:
                yield TurnStream(client, pushes, turn)
            finally:
                if not turn.finished and not client.closed:
                    await self.stop(request_id, turn.session_id or session_id)

    async def stop(self, request_id: str, session_id: str) -> None:
        """``chat/stop``, shielded and bounded: runs even while the caller is cancelled."""
        with shielded_cleanup():
            try:
                await self.client.call("chat/stop", {"requestId": request_id, "sessionId": session_id})
            except UpstreamError as exc:
                log.info("chat/stop for %s failed: %s", request_id, exc.message)

    async def delete_session(self, session_id: str) -> None:
        """``chat/deleteSessionById``, shielded and bounded."""
        with shielded_cleanup():
            try:
                await self.client.call("chat/deleteSessionById", {"sessionId": session_id})
            except UpstreamError as exc:
                log.info("deleting session %s failed: %s", session_id, exc.message)
