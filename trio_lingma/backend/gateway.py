"""The shared core under both wire APIs: model catalogue, admission, one turn's event stream.

Theory of operation
-------------------
A route resolves and admits a request with :meth:`Gateway.open_turn` (an async context
manager). Everything a request holds — the instance's ``CapacityLimiter`` ticket, the upstream
turn subscription, the upstream session — is taken inside that context and released by it,
whatever ends the request (normal end, client disconnect delivered as cancellation, deadline,
upstream crash, shutdown): releases happen in ``finally``/``async with`` exits, and clean-up
that talks to Lingma (``chat/stop``, deleting the session) is shielded and time-bounded.

The :class:`EventStream` it yields delivers *shaped* events (stop sequences, max_tokens, usage:
:mod:`trio_lingma.protocol.shaping`) and enforces the layered deadlines with absolute times:
time to first event, idle gap between upstream events, total request time. A deadline becomes a
terminal ``StreamError`` — never a hang.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from ..errors import GatewayError, ModelNotFound, UpstreamUnavailable, event_from_error
from ..protocol.conversation import ChatRequest, flatten
from ..protocol.events import ErrorKind, Event, StreamError
from ..protocol.shaping import OutputShaper
from ..protocol.tokens import count_input_tokens
from ..settings import Settings
from .instance import Instance, InstanceSnapshot, InstanceState
from .legacy import TurnStream

__all__ = ["EventStream", "Gateway", "GatewaySnapshot", "ModelInfo"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ModelInfo:
    """A model users can name: ``id`` is what they type, ``key`` is Lingma's identifier."""

    id: str
    key: str
    display_name: str
    reasoning: bool = False


@attrs.frozen(kw_only=True)
class GatewaySnapshot:
    instances: tuple[InstanceSnapshot, ...]
    simulator: bool

    @property
    def ready(self) -> int:
        return sum(1 for i in self.instances if i.state is InstanceState.READY)

    @property
    def in_flight(self) -> int:
        return sum(i.in_flight for i in self.instances)


def model_catalogue(models: Sequence[tuple[str, str, bool]]) -> dict[str, ModelInfo]:
    """Map every name a user may type (display name, lower-cased, and the raw key) to a model."""
    out: dict[str, ModelInfo] = {}
    for key, name, reasoning in models:
        info = ModelInfo(id=name, key=key, display_name=name, reasoning=reasoning)
        for alias in (name, name.lower(), key):
            out.setdefault(alias, info)
    return out


class EventStream:
    """The shaped events of one admitted turn, with deadlines."""

    def __init__(self, turn: TurnStream, shaper: OutputShaper, settings: Settings) -> None:
        self._turn = turn
        self._shaper = shaper
        now = trio.current_time()
        self._total_deadline = now + settings.request_timeout
        self._next_deadline = now + settings.first_token_timeout
        self._idle = settings.idle_timeout
        self._first = True
        self.ended = False

    @property
    def input_tokens(self) -> int:
        return self._shaper._input_tokens

    async def receive(self, *, heartbeat: float = math.inf) -> list[Event]:
        """The next events; ``[]`` when ``heartbeat`` seconds passed in silence.

        Ends with exactly one terminal event (Finish or StreamError); after that returns [].
        """
        while not self.ended:
            wake = min(self._next_deadline, self._total_deadline, trio.current_time() + heartbeat)
            with trio.move_on_at(wake):
                try:
                    batch = await self._turn.receive()
                except GatewayError as exc:
                    return self._end([event_from_error(exc)])
                self._first = False
                self._next_deadline = trio.current_time() + self._idle
                out = [shaped for event in batch for shaped in self._shaper.feed(event)]
                if self._shaper.done:
                    self.ended = True
                if out:
                    return out
                continue
            if trio.current_time() >= min(self._next_deadline, self._total_deadline):
                return self._end([self._timeout_event()])
            return []
        return []

    def _timeout_event(self) -> StreamError:
        if trio.current_time() >= self._total_deadline:
            what = "the whole request"
        elif self._first:
            what = "the first token"
        else:
            what = "the next chunk"
        return StreamError(kind=ErrorKind.UPSTREAM_TIMEOUT, message=f"Lingma took too long for {what}")

    def _end(self, events: list[Event]) -> list[Event]:
        self.ended = True
        return [shaped for event in events for shaped in self._shaper.feed(event)]

    async def collect(self) -> list[Event]:
        """Every remaining event (non-streaming responses)."""
        events: list[Event] = []
        while not self.ended:
            events += await self.receive()
        return events


class Gateway:
    """Instances, models and turns. Run :meth:`serve` in the app's nursery."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.instances = [Instance(i, settings) for i in range(settings.lingma_instances)]
        self._models: dict[str, ModelInfo] = {}

    def __repr__(self) -> str:
        snap = self.statistics()
        return f"<Gateway ready={snap.ready}/{len(self.instances)} in_flight={snap.in_flight}>"

    def statistics(self) -> GatewaySnapshot:
        return GatewaySnapshot(instances=tuple(i.snapshot() for i in self.instances),
                               simulator=self.settings.uses_simulator)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise every instance until cancelled."""
        if self.settings.uses_simulator:
            log.warning("LINGMA_BINARY is not set: running on the built-in Lingma SIMULATOR, "
                        "answers are canned. Set LINGMA_BINARY to use a real Lingma runtime.")
        async with trio.open_nursery() as nursery:
            for instance in self.instances:
                nursery.start_soon(instance.run, name=f"{instance.name} supervisor")
            task_status.started()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until at least one instance is ready (or ``timeout`` passes)."""
        with trio.move_on_after(timeout):
            while not any(i.ready for i in self.instances):
                await trio.sleep(0.05)
            return True
        return False

    def models(self) -> list[ModelInfo]:
        """The models users can name, from the first ready instance's catalogue."""
        self._refresh_models()
        seen: dict[str, ModelInfo] = {}
        for info in self._models.values():
            seen.setdefault(info.key, info)
        return list(seen.values())

    def resolve_model(self, name: str) -> ModelInfo:
        self._refresh_models()
        info = self._models.get(name) or self._models.get(name.lower())
        if info is None:
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.",
                                param="model")
        return info

    def _refresh_models(self) -> None:
        for instance in self.instances:
            if instance.ready and instance.handshake is not None:
                self._models = model_catalogue(instance.handshake.models)
                return
        if not self._models:
            raise UpstreamUnavailable("No Lingma instance is ready yet; try again shortly.")

    def _pick(self) -> Instance:
        ready = [i for i in self.instances if i.ready]
        if not ready:
            raise UpstreamUnavailable("No Lingma instance is ready; try again shortly.")
        return min(ready, key=lambda i: (i.in_flight, i.index))

    @asynccontextmanager
    async def open_turn(self, request: ChatRequest) -> AsyncIterator[EventStream]:
        """Admit ``request`` and open its upstream turn; errors here come before any output."""
        model = self.resolve_model(request.model)
        instance = self._pick()
        async with instance.limiter:
            client = instance.client
            if client is None or client.closed:
                raise UpstreamUnavailable(f"{instance.name} went away; try again.")
            session_id = uuid.uuid4().hex
            shaper = OutputShaper(input_tokens=count_input_tokens(request),
                                  max_tokens=request.max_tokens, stop=request.stop)
            try:
                async with instance.dialect.open_turn(
                    client, request_id=uuid.uuid4().hex, session_id=session_id,
                    question=flatten(request), model_key=model.key, is_reply=False,
                    mode=self.settings.lingma_mode, timeout=self.settings.first_token_timeout,
                ) as turn:
                    yield EventStream(turn, shaper, self.settings)
            finally:
                if not client.closed:
                    await instance.dialect.delete_session(client, session_id)
