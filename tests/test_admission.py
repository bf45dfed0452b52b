"""Admission bookkeeping (pure): Retry-After estimates, queue bound, per-key limits."""

from __future__ import annotations

import pytest

from trio_lingma.backend.admission import AdmissionQueue, KeyLimits, ServiceTimes, retry_after
from trio_lingma.errors import QueueFull


@pytest.mark.parametrize(("mean", "position", "capacity", "expected"), [
    (10.0, 1, 1, 10.0),
    (10.0, 3, 2, 15.0),
    (2.5, 1, 4, 1.0),     # clamped up to 1 s
    (30.0, 10, 1, 60.0),  # clamped down to 60 s
    (1.2, 1, 1, 2.0),     # whole seconds, rounded up
    (5.0, 1, 0, 5.0),     # no ready capacity counts as one ticket
])
def test_retry_after(mean: float, position: int, capacity: int, expected: float) -> None:
    assert retry_after(mean, position, capacity) == expected


def test_service_times_ewma() -> None:
    times = ServiceTimes(initial=1.0, alpha=0.5)
    assert times.mean == 1.0
    times.observe(10.0)  # the first observation replaces the guess
    assert times.mean == 10.0
    times.observe(20.0)
    assert times.mean == 15.0


def test_queue_bound() -> None:
    queue = AdmissionQueue(2)
    queue.enter(retry=1)
    queue.enter(retry=1)
    with pytest.raises(QueueFull) as info:
        queue.enter(retry=7)
    assert info.value.retry_after == 7 and info.value.status == 429
    queue.leave()
    queue.enter(retry=1)
    assert queue.queued == 2


def test_per_key_limit() -> None:
    limits = KeyLimits(1)
    limits.acquire("a", retry=1)
    limits.acquire("b", retry=1)
    limits.acquire(None, retry=1)  # no key presented: not limited
    with pytest.raises(QueueFull):
        limits.acquire("a", retry=3)
    limits.release("a")
    limits.acquire("a", retry=1)
    assert limits.active == 2


def test_no_per_key_limit() -> None:
    limits = KeyLimits(0)
    for _ in range(10):
        limits.acquire("a", retry=1)
    assert limits.active == 0
