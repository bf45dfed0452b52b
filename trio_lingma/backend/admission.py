"""Admission bookkeeping: the bounded wait queue, per-key limits, honest ``Retry-After``.

Theory of operation
-------------------
Capacity itself is each instance's ``trio.CapacityLimiter`` (fair, FIFO, cancellation-safe).
A request that finds no free ticket *queues* on its chosen instance's limiter; this module only
bounds how many may wait at once (``QUEUE_SIZE``: beyond it → :class:`QueueFull`, 429) and
estimates when to come back. The estimate is the mean service time (an exponentially weighted
moving average of how long turns held their ticket) × the caller's queue position ÷ the total
number of tickets, clamped to 1…60 s — so a 429 or a 503 says roughly when capacity frees up
instead of inviting an immediate retry storm.

Pure: no trio, no clock. The gateway feeds it durations it measured.
"""

from __future__ import annotations

import math

from ..errors import QueueFull

__all__ = ["AdmissionQueue", "KeyLimits", "ServiceTimes", "retry_after"]

MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 60.0


def retry_after(mean_service: float, position: int, capacity: int) -> float:
    """Whole seconds until a caller at ``position`` (1 = next) can expect a ticket."""
    estimate = mean_service * max(position, 1) / max(capacity, 1)
    return float(min(MAX_RETRY_AFTER, max(MIN_RETRY_AFTER, math.ceil(estimate))))


class ServiceTimes:
    """EWMA of ticket hold times; ``initial`` until the first observation."""

    def __init__(self, *, initial: float = 1.0, alpha: float = 0.2) -> None:
        self.mean = initial
        self.alpha = alpha
        self.count = 0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.mean = seconds if self.count == 0 else self.mean + self.alpha * (seconds - self.mean)
        self.count += 1


class AdmissionQueue:
    """How many requests wait for a ticket; at most ``size`` at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queued = 0

    def enter(self, *, retry: float) -> None:
        """Take a place in the queue, or raise QueueFull (429) with ``retry`` seconds."""
        if self.queued >= self.size:
            raise QueueFull(f"The gateway is at capacity and {self.queued} requests are already "
                            "queued; retry later.", retry_after=retry)
        self.queued += 1

    def leave(self) -> None:
        self.queued -= 1


class KeyLimits:
    """At most ``limit`` concurrent requests per API key (``0`` = unlimited)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def acquire(self, key: str | None, *, retry: float) -> None:
        if not self.limit or key is None:
            return
        if self._active.get(key, 0) >= self.limit:
            raise QueueFull(f"This API key already has {self.limit} requests in flight; "
                            "retry later.", retry_after=retry)
        self._active[key] = self._active.get(key, 0) + 1

    def release(self, key: str | None) -> None:
        if not self.limit or key is None:
            return
        left = self._active[key] - 1
        if left:
            self._active[key] = left
        else:
            del self._active[key]

    @property
    def active(self) -> int:
        return sum(self._active.values())
