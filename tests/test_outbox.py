"""The writer's outbox: urgent frames first, batches, a soft limit that only back-pressures."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_lingma.backend.outbox import Outbox, OutboxClosed


async def test_urgent_frames_jump_ahead_of_bulk() -> None:
    box = Outbox(limit=100)
    for n in range(3):
        box.put_nowait(f"ack {n}")
    box.put_nowait("ping", urgent=True)
    assert await box.take() == ["ping", "ack 0", "ack 1", "ack 2"]
    assert len(box) == 0


async def test_batches_are_bounded_and_keep_order() -> None:
    box = Outbox(limit=100, batch=4)
    for n in range(10):
        box.put_nowait(str(n))
    assert [await box.take() for _ in range(3)] == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]


async def test_the_limit_never_refuses_but_holds_the_reader(nursery: trio.Nursery) -> None:
    box = Outbox(limit=2, batch=1)
    for n in range(3):
        box.put_nowait(str(n))  # past the limit: still queued, nothing dropped
    assert box.full and len(box) == 3
    done = trio.Event()

    async def reader() -> None:
        await box.wait_for_room()
        done.set()

    nursery.start_soon(reader)
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()
    assert await box.take() == ["0"]
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()  # 2 left: still at the limit
    assert await box.take() == ["1"]
    await trio.testing.wait_all_tasks_blocked()
    assert done.is_set()


async def test_close_wakes_the_writer_and_the_reader(nursery: trio.Nursery) -> None:
    box = Outbox(limit=1, batch=1)
    box.put_nowait("a")
    box.put_nowait("b")
    batches: list[list[str]] = []
    errors: list[Exception] = []

    async def reader() -> None:
        try:
            await box.wait_for_room()
        except OutboxClosed as exc:
            errors.append(exc)

    async def writer() -> None:
        while batch := await box.take():
            batches.append(batch)
        batches.append(batch)

    assert await box.take() == ["a"]  # "b" left: the reader still waits
    nursery.start_soon(reader)
    await trio.testing.wait_all_tasks_blocked()
    box.close()  # drops "b"
    nursery.start_soon(writer)
    await trio.testing.wait_all_tasks_blocked()
    assert batches == [[]] and len(errors) == 1
    with pytest.raises(OutboxClosed):
        box.put_nowait("late")
