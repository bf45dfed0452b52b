"""The Lingma client's outbox: what the writer task sends next, in batches.

Theory of operation
-------------------
Two kinds of frames leave a connection. *Answers* to the runtime's pushes (a ``chat/answer``
acknowledgement per chunk, lingma-protocol.md pitfall 1) arrive at the push rate, which can be
tens of thousands per second; they are bulk and must never be dropped. *Our own messages*
(calls such as the health ``ping``, ``chat/ask``, ``chat/stop``, and notifications) are few and
urgent: a probe that waits behind thousands of acknowledgements misses its deadline and makes a
busy instance look dead.

So the outbox keeps two FIFO queues and the writer takes every urgent frame first, then bulk
ones, all ready frames in one batch (one ``send_many``, so one socket write for many frames).
The bulk queue has a soft limit: it never refuses a frame (the reader must not block in the
middle of a batch, and an answer is never dropped), but :meth:`Outbox.wait_for_room` lets the
reader stop *reading* while the writer is that far behind — back-pressure on the runtime through
TCP instead of an unbounded queue or a dropped answer. Closing wakes everyone: putters get
:class:`OutboxClosed`, the writer gets an empty batch.
"""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["Outbox", "OutboxClosed"]


class OutboxClosed(Exception):
    """The connection ended; nothing more will be sent."""


class Outbox:
    """Urgent and bulk frames for one writer; bulk has a soft limit (see module docs)."""

    def __init__(self, limit: int, *, batch: int = 512) -> None:
        self.limit = limit
        self.batch = batch
        self._urgent: deque[str] = deque()
        self._bulk: deque[str] = deque()
        self._has_frames = trio.lowlevel.ParkingLot()
        self._has_room = trio.lowlevel.ParkingLot()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Outbox urgent={len(self._urgent)} bulk={len(self._bulk)}/{self.limit}>"

    def __len__(self) -> int:
        return len(self._urgent) + len(self._bulk)

    @property
    def full(self) -> bool:
        return len(self._bulk) >= self.limit

    def put_nowait(self, frame: str, *, urgent: bool = False) -> None:
        """Queue ``frame`` (bulk frames past the limit too: see :meth:`wait_for_room`)."""
        if self._closed:
            raise OutboxClosed("the connection is closed")
        (self._urgent if urgent else self._bulk).append(frame)
        self._has_frames.unpark_all()

    async def wait_for_room(self) -> None:
        """Return once bulk is below its limit (at once if it is); raises OutboxClosed."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.full and not self._closed:
            await self._has_room.park()
        if self._closed:
            raise OutboxClosed("the connection is closed")

    async def take(self) -> list[str]:
        """The next batch, urgent frames first; waits for one; ``[]`` once closed."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not (self._urgent or self._bulk or self._closed):
            await self._has_frames.park()
        frames = list(self._urgent)
        self._urgent.clear()
        while self._bulk and len(frames) < self.batch:
            frames.append(self._bulk.popleft())
        if not self.full:
            self._has_room.unpark_all()
        return frames

    def close(self) -> None:
        """Drop what is queued and wake every waiter (idempotent)."""
        self._closed = True
        self._urgent.clear()
        self._bulk.clear()
        self._has_frames.unpark_all()
        self._has_room.unpark_all()
