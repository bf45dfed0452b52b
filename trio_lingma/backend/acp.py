"""The ACP-style ``session/*`` dialect carried out over a :class:`LingmaClient` (§3B).

Theory of operation
-------------------
:func:`initialize` binds the dialect to one connection: the :class:`AcpConnection` it returns
has exactly the interface of :class:`~trio_lingma.backend.legacy.LegacyConnection`
(:class:`~trio_lingma.backend.dialects.Connection`), and the instance holds it for one life.

* **Sessions belong to the runtime.** ``session/new`` assigns the id, so ``open_turn`` creates a
  session whenever it is given an id it did not create on this connection (the gateway passes a
  fresh uuid for a fresh conversation) and exposes the runtime's id as
  :attr:`AcpTurnStream.session_id`. A session it created is reused as is; ``session/set_model``
  is sent only when the model changes (LP's reuse mode). If anything fails before the turn is
  handed out, the session just created is deleted again so it cannot leak.
* **The prompt's response may come last, or at once.** ``session/prompt``'s response arrives
  when the turn ends (§3B.3), or at once as an empty acknowledgement (OC, §11: only
  ``chat_finish`` ends that turn), so it is awaited in its own named task while the caller
  reads updates. The request is encoded before the task starts: a prompt over
  ``LINGMA_MAX_MESSAGE_BYTES`` is a :class:`~trio_lingma.errors.MessageTooLarge` (413) from
  ``open_turn``, and the session just created for it is deleted. A nursery
  opened inside ``open_turn`` would outlive cancel scopes its caller opens and closes around it,
  so the task runs in the connection's own nursery (:meth:`LingmaClient.start_task`, next to the
  reader and writer, in the task tree) under a cancel scope this turn owns and cancels on exit;
  it ends with the connection at the latest. It never raises: its outcome is handed to the
  stream, which first drains every update already routed (the reader routes a ``chat_finish``
  before it resolves the response) and only then lets a response with a ``stopReason`` end
  the turn.
* **Leaving early** sends ``session/cancel`` (ACP's notification) and legacy ``chat/stop`` as a
  fallback, shielded and bounded, like the legacy dialect's ``chat/stop``.
* **A runtime without ``session/new``** (the VS Code extension's, pitfall 6) is found at
  handshake by creating (and deleting) a probe session, and reported as :class:`DialectMismatch`
  naming ``LINGMA_DIALECT``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from .. import __version__
from ..errors import UpstreamClosed, UpstreamError, UpstreamFailed
from ..protocol import acp
from ..protocol.events import Event
from ..protocol.jsonrpc import METHOD_NOT_FOUND
from .cleanup import shielded_cleanup
from .client import LingmaClient, Prepared, Push, take_queued

__all__ = ["AcpConnection", "AcpTurnStream", "DialectMismatch", "initialize", "initialize_versions",
           "is_method_missing"]

log = logging.getLogger(__name__)


class DialectMismatch(UpstreamFailed):
    """The runtime does not speak the configured dialect (the message names LINGMA_DIALECT)."""

    code = "dialect_mismatch"


NO_SESSION_NEW = (
    "this Lingma runtime does not implement session/new (the ACP dialect), like the VS Code "
    "extension's runtime: set LINGMA_DIALECT=legacy (or auto), or attach to a desktop/QoderCN "
    "runtime instead"
)


def is_method_missing(exc: UpstreamError) -> bool:
    """True for a JSON-RPC -32601 answer (the client puts the code in ``param``)."""
    return isinstance(exc, UpstreamFailed) and exc.param == str(METHOD_NOT_FOUND)


def _now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class _Outcome:
    result: Any = None
    error: UpstreamError | None = None


class AcpTurnStream:
    """The events of one ACP turn: routed updates, then possibly the prompt's response."""

    def __init__(self, client: LingmaClient, pushes: trio.MemoryReceiveChannel[Push], turn: acp.AcpTurn) -> None:
        self._client = client
        self._pushes = pushes
        self._turn = turn
        self._outcome: _Outcome | None = None
        self._outcome_used = False
        self._waiting: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<AcpTurnStream {self._turn!r} outcome={self._outcome!r}>"

    @property
    def finished(self) -> bool:
        return self._turn.finished

    @property
    def session_id(self) -> str | None:
        return self._turn.session_id

    def settle(self, outcome: _Outcome) -> None:
        """The prompt task's result; wakes a reader blocked on updates."""
        self._outcome = outcome
        if self._waiting is not None:
            self._waiting.cancel()

    async def receive(self) -> list[Event]:
        """The next non-empty batch of events; raises when the stream broke."""
        while True:
            try:
                push = await self._next_push()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise self._client.turn_lost() from None
            if push is None:
                events = self._end_from_outcome()
            elif isinstance(push, Push):
                events = self._turn.feed(push.method, push.params)
                events += take_queued(self._pushes, self._turn.feed, lambda: self._turn.finished)
            else:
                continue  # woken by the prompt's outcome: drain, then apply it
            if events:
                return events

    async def _next_push(self) -> Push | None | bool:
        """A push; None once the outcome is due; False after a wake-up."""
        if self._outcome is not None and not self._outcome_used:
            try:
                return self._pushes.receive_nowait()
            except trio.WouldBlock:
                self._outcome_used = True
                return None
        with trio.CancelScope() as scope:
            self._waiting = scope
            try:
                return await self._pushes.receive()
            finally:
                self._waiting = None
        return False

    def _end_from_outcome(self) -> list[Event]:
        assert self._outcome is not None
        error = self._outcome.error
        if error is None:
            return self._turn.prompt_done(self._outcome.result)
        if isinstance(error, UpstreamClosed) and not self._turn.finished:
            raise error
        return self._turn.prompt_failed(f"session/prompt failed: {error.message}")


async def _run_prompt(client: LingmaClient, prompt: Prepared, stream: AcpTurnStream,
                      scope: trio.CancelScope) -> None:
    """Send ``session/prompt`` and await its response (an acknowledgement, or the turn's end);
    never raises but Cancelled."""
    with scope:
        try:
            result = await client.call_prepared(prompt)
        except UpstreamError as exc:
            stream.settle(_Outcome(error=exc))
        except Exception as exc:  # a bug: still end the turn instead of crashing the run
            log.exception("%s: session/prompt task failed", client.name)
            stream.settle(_Outcome(error=UpstreamError(f"the gateway failed waiting for session/prompt "
                                                       f"({type(exc).__name__}; see its log)")))
        else:
            stream.settle(_Outcome(result=result))


async def initialize(client: LingmaClient, workdir: str) -> AcpConnection:
    """``initialize{protocolVersion}``, then a probe session (DialectMismatch without one)."""
    await initialize_versions(client, lambda version: acp.initialize_params(
        client_version=__version__, now_ms=_now_ms(), version=version))
    connection = AcpConnection(client, workdir)
    await connection.probe()
    return connection


async def initialize_versions(client: LingmaClient, make_params: Callable[[int], dict[str, Any]]) -> Any:
    """``initialize`` with each of :data:`~trio_lingma.protocol.acp.PROTOCOL_VERSIONS` until one
    is accepted (a JSON-RPC error answer means: try the next); its result, logged."""
    *newer, oldest = acp.PROTOCOL_VERSIONS
    for version in newer:
        try:
            return _log_server(client, version, await client.call("initialize", make_params(version)))
        except UpstreamFailed as exc:
            log.info("%s: initialize protocolVersion %d refused (%s); trying an older one",
                     client.name, version, exc.message)
    return _log_server(client, oldest, await client.call("initialize", make_params(oldest)))


def _log_server(client: LingmaClient, version: int, result: Any) -> Any:
    """Log who answered (``serverInfo`` is informative only: "lingma", "Lingma", anything)."""
    info = result.get("serverInfo") if isinstance(result, dict) else None
    name = info.get("name") if isinstance(info, dict) else None
    server = f"{name} {info.get('version', '')}".strip() if isinstance(info, dict) and name else "unnamed runtime"
    log.info("%s: initialized (protocolVersion %d, %s)", client.name, version, server)
    return result


class AcpConnection:
    """``session/*`` over one connection (lingma-protocol.md §3B): its cwd and the sessions it made."""

    name = "acp"
    #: The desktop app owns the login: a runtime without ``auth/status`` is taken as logged in.
    auth_optional = True

    def __init__(self, client: LingmaClient, cwd: str) -> None:
        self.client = client
        self.cwd = cwd
        self._models: dict[str, str] = {}  # session id → model key last set

    def __repr__(self) -> str:
        return f"<AcpConnection {self.client.name} sessions={len(self._models)}>"

    async def probe(self) -> None:
        """Create and delete a session: DialectMismatch if ``session/new`` is missing."""
        session_id = await self._new_session(math.inf)
        await self.delete_session(session_id)

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
    ) -> AsyncIterator[AcpTurnStream]:
        client = self.client
        created = session_id not in self._models
        if created:
            session_id = await self._new_session(timeout)
        try:
            await self._set_model(session_id, model_key, timeout)
            # encoded here, so that a prompt too large for the runtime is a 413 now, not a stream error
            prompt = client.prepare("session/prompt", acp.prompt_params(
                session_id=session_id, request_id=request_id, question=question, model_key=model_key, mode=mode))
        except BaseException:
            if created:
                await self.delete_session(session_id)
            raise
        with client.subscribe(request_id) as pushes:
            turn = acp.AcpTurn(request_id, session_id)
            stream = AcpTurnStream(client, pushes, turn)
            scope = trio.CancelScope()
            client.start_task(_run_prompt, client, prompt, stream, scope,
                              name=f"{client.name} session/prompt {request_id[:8]}")
            try:
                yield stream
            finally:
                if not turn.finished and not client.closed:
                    await self.stop(request_id, session_id)
                scope.cancel()

    async def stop(self, request_id: str, session_id: str) -> None:
        """``session/cancel`` + ``chat/stop`` fallback, shielded and bounded."""
        with shielded_cleanup():
            try:
                await self.client.notify("session/cancel", acp.cancel_params(session_id, request_id))
                await self.client.call("chat/stop", {"requestId": request_id, "sessionId": session_id})
            except UpstreamError as exc:
                log.info("stopping %s failed: %s", request_id, exc.message)

    async def delete_session(self, session_id: str) -> None:
        """``chat/deleteSessionById {sessionId}``, retried as ``{id}``; shielded and bounded."""
        self._models.pop(session_id, None)
        with shielded_cleanup():
            for legacy_key in (False, True):
                try:
                    params = acp.delete_session_params(session_id, legacy_key=legacy_key)
                    await self.client.call("chat/deleteSessionById", params)
                    return
                except UpstreamClosed:
                    return
                except UpstreamError as exc:
                    log.info("deleting session %s failed: %s", session_id, exc.message)

    # -- internals ---------------------------------------------------------------------

    async def _new_session(self, timeout: float) -> str:
        client = self.client
        try:
            result = await client.call("session/new", acp.new_session_params(self.cwd, now_ms=_now_ms()),
                                       timeout=timeout)
        except UpstreamFailed as exc:
            if is_method_missing(exc):
                raise DialectMismatch(f"{client.name}: {NO_SESSION_NEW}") from None
            raise
        session_id = acp.parse_session_id(result)
        if session_id is None:
            log.warning("%s: session/new returned no session id: %r", client.name, result)
            raise UpstreamFailed(f"{client.name}: session/new returned no session id")
        self._models[session_id] = ""
        return session_id

    async def _set_model(self, session_id: str, model_key: str, timeout: float) -> None:
        if not model_key or self._models.get(session_id) == model_key:
            return
        params = acp.set_model_params(session_id, model_key, now_ms=_now_ms())
        await self.client.call("session/set_model", params, timeout=timeout)
        self._models[session_id] = model_key
