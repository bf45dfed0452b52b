"""The pool's decisions as pure code: instance health, instance selection, snapshots.

Theory of operation
-------------------
*Health.* An instance is STARTING until its handshake is done, then READY. Health probes
(``ping``) run on an interval: one failure makes it UNHEALTHY (no new requests go there), and
only a *successful probe* makes it READY again — recovery is half-open, never by a timer alone.
``failures_to_restart`` failures in a row end the life (BACKOFF, then STARTING again, each life
with a new ``life`` number). :func:`after_probe` is that state machine.

*Selection* (:func:`choose`). A request whose conversation prefix hit the session cache goes
to the instance that owns the session (affinity), as long as that instance is READY in the same
life; if the owner is unhealthy or restarted, the entry is invalidated (``drop_affinity``) and
the request falls back. If the owner is busy while another instance has a free ticket, the
request goes there with a fresh session but keeps the entry for later. Otherwise: the READY
instance with the least load (in flight + waiting), ties by index. ``exclude`` keeps a retry off
the instance that just failed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from .sessions import CacheStats

__all__ = [
    "Candidate",
    "Choice",
    "InstanceSnapshot",
    "InstanceState",
    "PoolSnapshot",
    "ProbeResult",
    "after_probe",
    "choose",
]


class InstanceState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class ProbeResult:
    state: InstanceState
    failures: int
    restart: bool


def after_probe(state: InstanceState, *, ok: bool, failures: int, failures_to_restart: int) -> ProbeResult:
    """The health state after one probe (``failures`` = consecutive failures before it)."""
    if ok:
        return ProbeResult(state=InstanceState.READY, failures=0, restart=False)
    failures += 1
    return ProbeResult(state=InstanceState.UNHEALTHY, failures=failures,
                       restart=failures >= failures_to_restart)


@attrs.frozen(kw_only=True)
class InstanceSnapshot:
    """A frozen view of an instance for /readyz, metrics and the debug dump."""

    index: int
    state: InstanceState
    pid: int | None
    restarts: int
    in_flight: int
    capacity: int
    last_error: str | None
    logged_in: bool | None
    ws_port: int | None
    life: int = 0
    waiting: int = 0


@attrs.frozen(kw_only=True)
class Candidate:
    """What selection needs to know about one instance."""

    index: int
    life: int
    ready: bool
    in_flight: int
    waiting: int
    capacity: int

    @property
    def free(self) -> int:
        return self.capacity - self.in_flight

    @property
    def load(self) -> int:
        return self.in_flight + self.waiting


@attrs.frozen(kw_only=True)
class Choice:
    """Where a request goes: ``index`` (None = no READY instance), reusing the session or not."""

    index: int | None
    affine: bool = False
    drop_affinity: bool = False


def choose(candidates: Sequence[Candidate], *, owner: tuple[int, int] | None = None,
           exclude: frozenset[int] = frozenset()) -> Choice:
    """Affinity first, else least load among READY instances (ties by index)."""
    ready = [c for c in candidates if c.ready and c.index not in exclude]
    drop = False
    if owner is not None:
        own = next((c for c in ready if c.index == owner[0] and c.life == owner[1]), None)
        if own is None:
            drop = True
        elif own.free > 0 or not any(c.free > 0 for c in ready):
            return Choice(index=own.index, affine=True)
    if not ready:
        return Choice(index=None, drop_affinity=drop)
    best = min(ready, key=lambda c: (c.load, c.index))
    return Choice(index=best.index, drop_affinity=drop)


@attrs.frozen(kw_only=True)
class PoolSnapshot:
    """``pool.statistics()``: everything metrics, /readyz and the debug dump read."""

    instances: tuple[InstanceSnapshot, ...]
    queued: int
    cache: CacheStats
    simulator: bool = False
    mean_service: float = 0.0
    probe_failures: int = 0
    #: Upstream sessions waiting to be deleted or being deleted (the session reaper).
    deleting: int = 0
    #: Upstream sessions the reaper deleted since start.
    deleted: int = 0

    def __repr__(self) -> str:
        return (f"<Pool ready={self.ready}/{len(self.instances)} starting={self.starting} "
                f"in_flight={self.in_flight} queued={self.queued}>")

    def _count(self, state: InstanceState) -> int:
        return sum(1 for i in self.instances if i.state is state)

    @property
    def ready(self) -> int:
        return self._count(InstanceState.READY)

    @property
    def starting(self) -> int:
        return self._count(InstanceState.STARTING)

    @property
    def in_flight(self) -> int:
        return sum(i.in_flight for i in self.instances)

    @property
    def capacity(self) -> int:
        return sum(i.capacity for i in self.instances if i.state is InstanceState.READY)

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing queued."""
        return self.in_flight == 0 and self.queued == 0 and all(i.waiting == 0 for i in self.instances)
