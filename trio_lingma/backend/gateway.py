"""The shared core under both wire APIs: the pool of instances, admission, session reuse.

Theory of operation
-------------------
A route resolves and admits a request with :meth:`Gateway.open_turn` (an async context
manager). Everything a request holds — a per-API-key slot, a place in the admission queue, the
instance's ``CapacityLimiter`` ticket, the upstream turn subscription, the upstream session — is
taken inside that context and released by it, whatever ends the request (normal end, client
disconnect delivered as cancellation, deadline, upstream crash, shutdown). Clean-up that talks
to Lingma (``chat/stop``) is shielded and time-bounded; deleting upstream sessions is handed to
the *session reaper* (:mod:`~trio_lingma.backend.reaper`) together with the request's ticket, so
a finished request never waits for it, and capacity is free again only once its sessions are
gone.

Admission (:meth:`Gateway.admit`): check the conversation prefix out of the session cache
(:mod:`~trio_lingma.backend.sessions`), let the pure :func:`~trio_lingma.backend.pool.choose`
pick the instance (affinity, else least load), take a ticket at once or wait for one in the
bounded queue (:mod:`~trio_lingma.backend.admission`): full → 429, too long → 503, both with
a ``Retry-After`` estimated from observed service times. All of this happens before any HTTP
header is sent. One request stays on the instance it was given, except for the one retry of
:class:`~trio_lingma.backend.stream.EventStream` when the upstream failed before any content.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from ..aliases import match_alias, parse_aliases
from ..errors import ModelNotFound, Overloaded, QueueTimeout, UpstreamUnavailable, shorten
from ..protocol.conversation import ChatRequest
from ..protocol.legacy import split_model_mode
from ..settings import Settings
from .admission import AdmissionQueue, KeyLimits, ServiceTimes, retry_after
from .attach import attach_connector
from .instance import Instance, InstanceState
from .pool import Candidate, PoolSnapshot, choose
from .reaper import SessionReaper
from .sessions import SessionCache, SessionEntry
from .stream import Attempt, EventStream

__all__ = ["EventStream", "Gateway", "GatewaySnapshot", "ModelInfo", "TurnReport", "model_catalogue"]

log = logging.getLogger(__name__)

GatewaySnapshot = PoolSnapshot


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A model users can name: ``id`` is what they type, ``key`` is Lingma's identifier."""

    id: str
    key: str
    display_name: str
    reasoning: bool = False


@attrs.frozen(kw_only=True)
class TurnReport:
    """What one finished request did, for observers (metrics, usage); no prompt text."""

    model: str
    api_key: str | None
    ok: bool
    input_tokens: int
    output_tokens: int
    queue_wait: float | None
    first_token_after: float | None


def model_catalogue(models: Sequence[tuple[str, str, bool]]) -> dict[str, ModelInfo]:
    """Map every name a user may type (display name, lower-cased, and the raw key) to a model."""
    out: dict[str, ModelInfo] = {}
    for key, name, reasoning in models:
        info = ModelInfo(id=name, key=key, display_name=name, reasoning=reasoning)
        for alias in (name, name.lower(), key):
            out.setdefault(alias, info)
    return out


class Gateway:
    """The pool: instances, models, admission, sessions. Run :meth:`serve` in the app's nursery."""

    def __init__(self, settings: Settings, *, instances: Sequence[Instance] | None = None) -> None:
        self.settings = settings
        self.instances = list(instances) if instances is not None else [
            Instance(i, settings, connector=attach_connector(settings) if settings.lingma_attach else None)
            for i in range(1 if settings.lingma_attach else settings.lingma_instances)]
        assert [i.index for i in self.instances] == list(range(len(self.instances)))
        self.sessions = SessionCache(capacity=settings.session_cache_size, ttl=settings.session_ttl)
        self.queue = AdmissionQueue(settings.queue_size)
        self.key_limits = KeyLimits(settings.per_key_concurrency)
        self.service = ServiceTimes()
        self._models: dict[str, ModelInfo] = {}
        self._aliases = parse_aliases(settings.model_aliases)
        self.reaper = SessionReaper(self._delete)
        self._expiry_wake = trio.Event()
        #: Called with a :class:`TurnReport` when each request ends (synchronously; never raises).
        self.observers: list[Callable[[TurnReport], None]] = []
        #: Set by :meth:`start_drain`: no new requests are admitted (503) and /readyz fails.
        self.draining = False
        self._streams: set[EventStream] = set()
        self._stream_ended = trio.Event()  # set (and replaced) whenever a request ends
        self._instance_changed = trio.Event()  # set (and replaced) when any instance changes state
        for instance in self.instances:
            instance.on_state_change = self._note_instance_change

    def __repr__(self) -> str:
        return repr(self.statistics())

    def statistics(self) -> PoolSnapshot:
        """A frozen snapshot: per-instance state, in flight, queued, restarts, cache."""
        return PoolSnapshot(instances=tuple(i.snapshot() for i in self.instances),
                            queued=self.queue.queued, cache=self.sessions.statistics(),
                            simulator=self.settings.uses_simulator, mean_service=self.service.mean,
                            probe_failures=sum(i.probe_failures for i in self.instances),
                            deleting=self.reaper.statistics().pending, deleted=self.reaper.statistics().deleted)

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise every instance and reap upstream sessions until cancelled."""
        if self.settings.uses_simulator and not self._injected:
            log.warning("LINGMA_BINARY is not set: running on the built-in Lingma SIMULATOR, "
                        "answers are canned. Set LINGMA_BINARY to use a real Lingma runtime.")
        async with trio.open_nursery() as nursery:
            for instance in self.instances:
                nursery.start_soon(instance.run, name=f"{instance.name} supervisor")
            await nursery.start(self.reaper.serve, name="session reaper")
            nursery.start_soon(self._serve_expiry, name="session expiry")
            task_status.started()

    @property
    def _injected(self) -> bool:
        return any(i._connector is not None for i in self.instances)

    def _note_instance_change(self) -> None:
        self._instance_changed.set()
        self._instance_changed = trio.Event()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until at least one instance is ready (or ``timeout`` passes)."""
        with trio.move_on_after(timeout):
            while not any(i.ready for i in self.instances):
                await self._instance_changed.wait()
            return True
        return False

    def start_drain(self) -> None:
        """Stop admitting requests; those in flight go on."""
        if not self.draining:
            log.warning("draining: no new requests; %d in flight", len(self._streams))
        self.draining = True

    async def drain(self, timeout: float) -> bool:
        """Stop admitting and wait (up to ``timeout``) until no request is in flight or queued.

        If requests are still open then, they are ended with a protocol-correct error
        (``abort``) and given a moment to write it. True when everything finished by itself.
        """
        self.start_drain()
        with trio.move_on_after(timeout):
            while self._streams or self.queue.queued:  # a queued request has a stream too
                await self._stream_ended.wait()
            return True
        log.warning("drain timeout: ending %d open requests", len(self._streams))
        for stream in list(self._streams):
            stream.abort("The gateway is shutting down; retry the request.")
        with trio.move_on_after(2.0):
            while self._streams:
                await self._stream_ended.wait()
        return False

    # -- models --------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """The models users can name, from the first ready instance's catalogue."""
        self._refresh_models()
        seen: dict[str, ModelInfo] = {}
        for info in self._models.values():
            seen.setdefault(info.key, info)
        return list(seen.values())

    def resolve_model(self, name: str) -> ModelInfo:
        """The model a user named (a ``:agent``/``:chat`` mode suffix is allowed), directly or
        through ``MODEL_ALIASES`` (exact model ids win; see :mod:`trio_lingma.aliases`)."""
        name, _ = split_model_mode(name)
        self._refresh_models()
        info = self._models.get(name) or self._models.get(name.lower())
        if info is not None:
            return info
        alias = match_alias(name, self._aliases)
        if alias is None:
            raise ModelNotFound(f"The model `{shorten(name)}` does not exist or you do not have access to it.",
                                param="model")
        info = self._models.get(alias.target) or self._models.get(alias.target.lower())
        if info is None:
            raise ModelNotFound(f"The model `{shorten(name)}` is aliased to `{alias.target}` (MODEL_ALIASES), "
                                "which does not exist.", param="model")
        return info

    def _refresh_models(self) -> None:
        for instance in self.instances:
            if instance.ready and instance.handshake is not None:
                self._models = model_catalogue(instance.handshake.models)
                return
        if not self._models:
            raise UpstreamUnavailable("No Lingma instance is ready yet; try again shortly.",
                                      retry_after=self.settings.restart_initial)

    async def _resolve_model_waiting(self, name: str) -> ModelInfo:
        """:meth:`resolve_model`; before the first instance is ready, wait for it in the queue."""
        deadline = trio.current_time() + self.settings.queue_timeout
        while not self._models and not any(i.ready for i in self.instances):
            await self._wait_for_instance(frozenset(), deadline)
        return self.resolve_model(name)

    # -- one request -----------------------------------------------------------------------

    @asynccontextmanager
    async def open_turn(self, request: ChatRequest, *, api_key: str | None = None) -> AsyncIterator[EventStream]:
        """Admit ``request`` and open its upstream turn; errors here come before any output."""
        if self.draining:
            raise Overloaded("The gateway is shutting down; retry the request.",
                             retry_after=self._retry_after(1))
        model = await self._resolve_model_waiting(request.model)
        mode = split_model_mode(request.model)[1] or self.settings.lingma_mode
        self.key_limits.acquire(api_key, retry=self._retry_after(1))
        try:
            stream = EventStream(self, request, model, mode=mode)
            ok = False
            self._streams.add(stream)
            try:
                await stream.open()
                yield stream
                ok = True
            finally:
                self._streams.discard(stream)
                try:
                    await stream.aclose(ok=ok)
                finally:  # reported even when closing failed: metrics count every request
                    self._report(stream, model, api_key)
                    self._stream_ended.set()
                    self._stream_ended = trio.Event()
        finally:
            self.key_limits.release(api_key)

    def _report(self, stream: EventStream, model: ModelInfo, api_key: str | None) -> None:
        usage = stream.usage
        report = TurnReport(
            model=model.id, api_key=api_key, ok=stream.succeeded,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            queue_wait=stream.queue_wait, first_token_after=stream.first_token_after,
        )
        for observer in self.observers:
            try:
                observer(report)
            except Exception:  # an observer bug must not fail the request
                log.exception("turn observer failed")

    async def admit(self, key: str | None, *, exclude: frozenset[int] = frozenset()) -> Attempt:
        """A ticket on the chosen instance, with the cached session when the prefix hit."""
        entry = None
        if key is not None:
            entry, expired = self.sessions.checkout(key, trio.current_time())
            self._doom(expired)
        deadline = trio.current_time() + self.settings.queue_timeout
        token = object()
        try:
            while True:
                instance, entry = await self._select(entry, exclude, deadline)
                await self._take_ticket(instance, token, deadline)
                if instance.ready and (entry is None or entry.life == instance.life):
                    return Attempt(instance, token, entry)
                instance.limiter.release_on_behalf_of(token)  # it went away while we waited
        except BaseException:
            if entry is not None:
                self._doom(self.sessions.restore(entry, trio.current_time()))
            raise

    async def _select(self, entry: SessionEntry | None, exclude: frozenset[int],
                      deadline: float) -> tuple[Instance, SessionEntry | None]:
        """The instance to queue on; while none is READY, wait for one that is coming back."""
        while True:
            owner = (entry.instance, entry.life) if entry is not None else None
            choice = choose(self._candidates(), owner=owner, exclude=exclude)
            if entry is not None and not choice.affine:
                if choice.drop_affinity:  # its instance is unhealthy or restarted: invalidate
                    self._doom([entry])
                else:  # the owner is busy and another instance is free: keep it for later
                    self._doom(self.sessions.restore(entry, trio.current_time()))
                entry = None
            if choice.index is not None:
                return self.instances[choice.index], entry
            await self._wait_for_instance(exclude, deadline)

    async def _wait_for_instance(self, exclude: frozenset[int], deadline: float) -> None:
        """Wait in the admission queue until an instance changes state (it may be READY now).

        Only while an instance is on its way to READY (starting, or backing off before a
        restart: 1–2.5 s); 503 with ``Retry-After`` at ``deadline``. An UNHEALTHY instance (a
        frozen runtime, a logged-out account) may stay so for long: 503 at once.
        """
        retry = self.settings.restart_initial
        if not any(i.state in _COMING and i.index not in exclude for i in self.instances):
            raise UpstreamUnavailable("No Lingma instance is ready; try again shortly.", retry_after=retry)
        self.queue.enter(retry=retry)
        try:
            with trio.move_on_at(deadline):
                await self._instance_changed.wait()
                return
        finally:
            self.queue.leave()
        raise UpstreamUnavailable(f"No Lingma instance became ready within {self.settings.queue_timeout:g} s; "
                                  "retry later.", retry_after=retry)

    def _candidates(self) -> list[Candidate]:
        return [Candidate(index=i.index, life=i.life, ready=i.ready, in_flight=i.in_flight,
                          waiting=int(i.limiter.statistics().tasks_waiting),
                          capacity=int(i.limiter.total_tokens)) for i in self.instances]

    def has_ready(self, *, exclude: set[int]) -> bool:
        return any(i.ready and i.index not in exclude for i in self.instances)

    async def _take_ticket(self, instance: Instance, token: object, deadline: float) -> None:
        """A ticket now, or a bounded wait in the queue (QueueFull / QueueTimeout)."""
        try:
            instance.limiter.acquire_on_behalf_of_nowait(token)
            return
        except trio.WouldBlock:
            pass
        self.queue.enter(retry=self._retry_after(self.queue.queued + 1))
        try:
            with trio.move_on_at(deadline):
                await instance.limiter.acquire_on_behalf_of(token)
                return
        finally:
            self.queue.leave()
        raise QueueTimeout(f"No capacity became free within {self.settings.queue_timeout:g} s; "
                           "retry later.", retry_after=self._retry_after(self.queue.queued + 1))

    def _retry_after(self, position: int) -> float:
        capacity = sum(int(i.limiter.total_tokens) for i in self.instances if i.ready)
        return retry_after(self.service.mean, position, capacity)

    async def release(self, attempt: Attempt, *, store_as: str | None) -> None:
        """End the attempt: leave the turn, cache the session or delete it, free the ticket.

        The sessions to delete (this one when not cached, or the entry its check-in evicted)
        go to the reaper with the ticket, which it returns once they are deleted.
        """
        try:
            await attempt.close_turn()
        finally:
            self.service.observe(trio.current_time() - attempt.acquired_at)
            instance = attempt.instance
            self.reaper.hand_over(self._settle_session(attempt, store_as),
                                  functools.partial(instance.limiter.release_on_behalf_of, attempt.token),
                                  name=f"session reaper: delete for {instance.name}")

    def _settle_session(self, attempt: Attempt, store_as: str | None) -> list[SessionEntry]:
        """Cache the attempt's session (after a clean finish); the entries to delete."""
        if store_as is not None and attempt.finished and attempt.instance.life == attempt.life:
            self._expiry_wake.set()  # the next expiry may be earlier now
            return self.sessions.put(key=store_as, session_id=attempt.session_id,
                                     instance=attempt.instance.index, life=attempt.life,
                                     turns=attempt.turns + 1, now=trio.current_time())
        return [_entry_for(attempt)]

    # -- deleting upstream sessions ----------------------------------------------------------

    def _doom(self, entries: Sequence[SessionEntry]) -> None:
        """Entries that left the cache by themselves (expired, invalidated): delete them."""
        self.reaper.doom(entries)

    async def _serve_expiry(self) -> None:
        """Hand expired cache entries to the reaper, at their exact expiry times."""
        while True:
            self._doom(self.sessions.expire(trio.current_time()))
            deadline = self.sessions.next_expiry()
            with trio.move_on_at(trio.current_time() + 3600.0 if deadline is None else deadline):
                await self._expiry_wake.wait()
            self._expiry_wake = trio.Event()

    async def _delete(self, entry: SessionEntry) -> None:
        """``chat/deleteSessionById`` on the owning instance (shielded, bounded by the dialect)."""
        instance = self.instances[entry.instance]
        connection = instance.connection
        if instance.life != entry.life or connection is None or connection.client.closed:
            return  # the session ended with the process that held it
        await connection.delete_session(entry.session_id)

    def idle(self) -> bool:
        """Nothing in flight or queued, and no session deletion pending."""
        return self.statistics().idle and self.reaper.statistics().pending == 0


#: Instance states on the way to READY: a request may wait for them (up to QUEUE_TIMEOUT).
_COMING = frozenset({InstanceState.STARTING, InstanceState.BACKOFF})


def _entry_for(attempt: Attempt) -> SessionEntry:
    return SessionEntry(key="", session_id=attempt.session_id, instance=attempt.instance.index,
                        life=attempt.life, turns=attempt.turns, expires_at=0.0)

