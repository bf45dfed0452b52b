"""Pool decisions (pure): the health state machine, selection, the snapshot's repr."""

from __future__ import annotations

import pytest

from trio_lingma.backend.pool import (
    Candidate,
    Choice,
    InstanceSnapshot,
    InstanceState,
    PoolSnapshot,
    after_probe,
    choose,
)
from trio_lingma.backend.sessions import CacheStats

READY, UNHEALTHY = InstanceState.READY, InstanceState.UNHEALTHY


def cand(index: int, *, in_flight: int = 0, waiting: int = 0, capacity: int = 2, ready: bool = True,
         life: int = 1) -> Candidate:
    return Candidate(index=index, life=life, ready=ready, in_flight=in_flight, waiting=waiting,
                     capacity=capacity)


def test_probe_failures_then_restart() -> None:
    state, failures, seen = READY, 0, []
    for _ in range(3):
        result = after_probe(state, ok=False, failures=failures, failures_to_restart=3)
        state, failures = result.state, result.failures
        seen.append((state, result.restart))
    assert seen == [(UNHEALTHY, False), (UNHEALTHY, False), (UNHEALTHY, True)]


def test_recovery_only_after_a_successful_probe() -> None:
    failed = after_probe(READY, ok=False, failures=0, failures_to_restart=3)
    assert failed.state is UNHEALTHY
    recovered = after_probe(failed.state, ok=True, failures=failed.failures, failures_to_restart=3)
    assert (recovered.state, recovered.failures, recovered.restart) == (READY, 0, False)


def test_least_load_ties_by_index() -> None:
    assert choose([cand(0, in_flight=1), cand(1), cand(2)]) == Choice(index=1)
    assert choose([cand(0, in_flight=2, waiting=1), cand(1, in_flight=2)]) == Choice(index=1)


def test_unhealthy_and_excluded_are_skipped() -> None:
    cands = [cand(0, ready=False), cand(1, in_flight=1), cand(2, in_flight=1)]
    assert choose(cands) == Choice(index=1)
    assert choose(cands, exclude=frozenset({1})) == Choice(index=2)
    assert choose([cand(0, ready=False)]) == Choice(index=None)


def test_affinity_wins_over_load() -> None:
    cands = [cand(0), cand(1, in_flight=1)]
    assert choose(cands, owner=(1, 1)) == Choice(index=1, affine=True)


def test_busy_owner_falls_back_without_dropping_the_session() -> None:
    cands = [cand(0), cand(1, in_flight=2)]
    assert choose(cands, owner=(1, 1)) == Choice(index=0)
    # ...but when every instance is busy, wait for the owner
    cands = [cand(0, in_flight=2), cand(1, in_flight=2)]
    assert choose(cands, owner=(1, 1)) == Choice(index=1, affine=True)


@pytest.mark.parametrize("owner", [
    cand(1, ready=False),  # unhealthy
    cand(1, life=2),       # restarted: the session died with the old process
])
def test_gone_owner_drops_affinity(owner: Candidate) -> None:
    assert choose([cand(0), owner], owner=(1, 1)) == Choice(index=0, drop_affinity=True)


def test_pool_repr_and_idle() -> None:
    def inst(index: int, state: InstanceState, in_flight: int = 0) -> InstanceSnapshot:
        return InstanceSnapshot(index=index, state=state, pid=None, restarts=0, in_flight=in_flight,
                                capacity=4, last_error=None, logged_in=True, ws_port=None)
    cache = CacheStats(size=0, capacity=8, hits=0, misses=0, evictions=0, expirations=0)
    snap = PoolSnapshot(instances=(inst(0, READY, 3), inst(1, READY, 2), inst(2, READY),
                                   inst(3, InstanceState.STARTING)), queued=2, cache=cache)
    assert repr(snap) == "<Pool ready=3/4 starting=1 in_flight=5 queued=2>"
    assert not snap.idle and snap.capacity == 12
    assert PoolSnapshot(instances=(inst(0, READY),), queued=0, cache=cache).idle
