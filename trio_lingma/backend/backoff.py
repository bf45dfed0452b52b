"""Restart backoff: a pure function, tested with exact virtual times."""

from __future__ import annotations

__all__ = ["restart_delay"]


def restart_delay(failures: int, *, initial: float, maximum: float, factor: float = 2.0) -> float:
    """Seconds to wait before restart number ``failures`` (1 = the first restart).

    Exponential (``initial × factor^(failures-1)``) and capped at ``maximum``. A process that
    stayed healthy long enough resets ``failures`` to 0 (the supervisor's decision), so a crash
    after a day of service restarts quickly again.
    """
    if failures <= 0:
        return 0.0
    # Compare exponents rather than computing huge powers after many failures.
    if failures - 1 > 64:
        return maximum
    return min(initial * factor ** (failures - 1), maximum)
