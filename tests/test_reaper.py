"""Upstream sessions never leak: every session that is not cached is deleted, none is dropped,
deletions run concurrently but bounded, and slow deletions slow admissions (backpressure)
instead of piling sessions up in the runtime. MockClock, fake runtimes."""

from __future__ import annotations

import math
from pathlib import Path

import trio
import trio.testing

from trio_lingma.backend.reaper import WORKERS

from .pool_support import Pool, make_settings, open_pool, text_of


def held(pool: Pool) -> int:
    """Sessions the fake runtimes hold right now (finished a turn, not deleted)."""
    return sum(len(f.sessions) for f in pool.fakes)


def bound(pool: Pool) -> int:
    """What they may hold: every cache entry, plus one session per ticket held."""
    snap = pool.gw.statistics()
    return snap.cache.size + snap.in_flight


async def test_a_slow_deletion_holds_the_ticket_so_the_next_request_waits_for_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, session_cache_size=0), 1)
    pool.fakes[0].delete_delay = 1.5
    began = trio.current_time()
    await pool.ask("one")
    assert trio.current_time() == began  # the answer does not wait for the deletion
    assert pool.gw.statistics().in_flight == 1 and pool.gw.statistics().deleting == 1
    await pool.ask("two")  # its ticket is free again only once "one" is deleted upstream
    assert trio.current_time() == began + 1.5
    await trio.sleep(2.0)
    (one, two) = pool.fakes[0].asks
    assert pool.fakes[0].deleted == [one["sessionId"], two["sessionId"]]
    assert held(pool) == 0 and pool.gw.idle()
    pool.assert_idle()


async def test_sustained_load_with_slow_deletions_never_exceeds_cache_plus_in_flight(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, session_cache_size=8, lingma_concurrency=3, queue_size=100,
                             queue_timeout=600.0, per_key_concurrency=0)
    pool = await open_pool(nursery, settings, 2)
    for fake in pool.fakes:
        fake.delete_delay = 0.7  # far slower than a turn: the old reaper fell behind here
    worst: list[tuple[int, int]] = []

    async def watch() -> None:
        while True:
            if held(pool) > bound(pool):
                worst.append((held(pool), bound(pool)))
            await trio.sleep(0.05)

    async def client(n: int) -> None:
        for i in range(25):
            if i % 3 == 2:  # a follow-up of this client's previous one-shot: a cache hit or not
                answer = await pool.ask(f"c{n} q{i - 1}", f"Echo: c{n} q{i - 1}", f"c{n} q{i}")
            else:
                answer = await pool.ask(f"[fake slow 0.1] c{n} q{i}")
            assert text_of(answer).endswith(f"c{n} q{i}")

    async with trio.open_nursery() as inner:
        inner.start_soon(watch)
        async with trio.open_nursery() as clients:
            for n in range(20):
                clients.start_soon(client, n)
        await trio.sleep(10.0)  # the last deletions (0.7 s each, concurrently)
        await pool.settle()
        inner.cancel_scope.cancel()
    assert worst == []
    asks = len(pool.all_asks())
    assert asks >= 500 and held(pool) == pool.gw.statistics().cache.size == 8
    assert sum(len(f.deleted) for f in pool.fakes) == len({a["sessionId"] for a in pool.all_asks()}) - 8
    # bounded concurrency: one deletion per held ticket, plus the reaper's own workers
    assert all(f.max_deleting <= 3 * 2 + WORKERS for f in pool.fakes)
    pool.assert_idle()


async def test_expired_sessions_are_all_deleted_by_a_bounded_number_of_workers(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, session_cache_size=50, session_ttl=100.0, lingma_concurrency=50,
                             per_key_concurrency=0)
    pool = await open_pool(nursery, settings, 1)
    async with trio.open_nursery() as clients:
        for n in range(50):
            clients.start_soon(pool.ask, f"q{n}")
    assert held(pool) == 50
    pool.fakes[0].delete_delay = 1.0
    began = trio.current_time()
    await trio.sleep(100.0 + 20.0)  # all expire at 100 s: 50 deletions, WORKERS at a time
    assert held(pool) == 0
    assert pool.fakes[0].max_deleting == WORKERS
    assert max(pool.fakes[0].deleted_at) - began == 100.0 + math.ceil(50 / WORKERS) * 1.0
    await pool.settle()
    assert pool.gw.statistics().cache.expirations == 50 and pool.gw.idle()
