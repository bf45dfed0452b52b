"""Deleting upstream sessions: never dropped, concurrent, and paid for with capacity.

Theory of operation
-------------------
Every fresh ``chat/ask`` creates a session in the runtime (lingma-protocol.md §3A), and it
lives there until ``chat/deleteSessionById`` — the runtime has no expiry and no batch delete
short of ``chat/clearAllSessions``. So each session must be deleted exactly once: at once when
its turn is not cached, or later when the cache evicts, replaces or expires it. Caching a fresh
one-shot conversation therefore costs no extra deletion, only a later one, and lets its
follow-up reuse it; the gateway caches it.

The number of sessions held upstream stays ``≤ cache size + tickets held`` because deletion is
paid for with capacity:

* **Handed over with a ticket.** When a request ends, the sessions it must get rid of — its own
  (not cached) or the entry its check-in evicted or replaced — are handed over *together with
  its instance ticket* (:meth:`SessionReaper.hand_over`). A task deletes them and only then
  returns the ticket. A request that waits for that ticket waits in the ordinary admission
  queue (``QUEUE_SIZE``/``QUEUE_TIMEOUT``/``Retry-After``): when deletions fall behind,
  admissions slow down instead of sessions piling up. At most one deletion task runs per
  held ticket, so concurrency per instance is bounded by ``LINGMA_CONCURRENCY``.
* **Without a ticket** (:meth:`SessionReaper.doom`): entries that leave the cache by themselves
  (TTL expiry, an instance that turned unhealthy, a queued request cancelled) go to an
  unbounded queue — nothing is ever dropped — drained by :data:`WORKERS` concurrent workers.
  These were counted as cache entries a moment before, so they stay within the cache's share.

Each deletion is shielded and bounded by the dialect (``shielded_cleanup``, which logs a
failure); a session whose instance restarted is not deleted (it died with the process).
``statistics()`` counts what is pending and what was done.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from .sessions import SessionEntry

__all__ = ["ReaperStats", "SessionReaper", "WORKERS"]

log = logging.getLogger(__name__)

#: Concurrent deletions of sessions that left the cache by themselves (expired, invalidated).
WORKERS = 4

Delete = Callable[[SessionEntry], Awaitable[None]]


@attrs.frozen(kw_only=True)
class ReaperStats:
    """``pending``: waiting or being deleted; ``deleted``: done since start."""

    pending: int
    deleted: int


class SessionReaper:
    """Deletes upstream sessions off the request path. Run :meth:`serve` in a nursery."""

    def __init__(self, delete: Delete, *, workers: int = WORKERS) -> None:
        self._delete = delete
        self._workers = workers
        self._send, self._receive = trio.open_memory_channel[SessionEntry](math.inf)
        self._nursery: trio.Nursery | None = None
        self._pending = self._deleted = 0

    def __repr__(self) -> str:
        return f"<SessionReaper pending={self._pending} deleted={self._deleted}>"

    def statistics(self) -> ReaperStats:
        return ReaperStats(pending=self._pending, deleted=self._deleted)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the workers (and the handed-over deletions) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                for n in range(self._workers):
                    nursery.start_soon(self._work, name=f"session reaper worker {n}")
                self._nursery = nursery
                task_status.started()
        finally:
            self._nursery = None

    def doom(self, entries: Sequence[SessionEntry]) -> None:
        """Queue ``entries`` for deletion (never blocks, never drops)."""
        for entry in entries:
            self._send.send_nowait(entry)
            self._pending += 1

    def hand_over(self, entries: Sequence[SessionEntry], release: Callable[[], None], *, name: str) -> None:
        """Delete ``entries``, then call ``release`` (give back the ticket that paid for them)."""
        if not entries:
            release()
            return
        if self._nursery is None:  # not serving (shutting down): queue them, free the ticket
            self.doom(entries)
            release()
            return
        self._pending += len(entries)
        self._nursery.start_soon(self._delete_then_release, entries, release, name=name)

    async def _delete_then_release(self, entries: Sequence[SessionEntry], release: Callable[[], None]) -> None:
        try:
            for entry in entries:
                await self._delete_one(entry)
        finally:
            release()

    async def _work(self) -> None:
        async for entry in self._receive:
            await self._delete_one(entry)

    async def _delete_one(self, entry: SessionEntry) -> None:
        try:
            await self._delete(entry)
            self._deleted += 1
        except Exception:  # a bug must not stop the reaper
            log.exception("deleting session %s failed", entry.session_id)
        finally:
            self._pending -= 1
