"""No false outage while an instance (re)starts: a request waits in the admission queue for an
instance that is starting or backing off, up to QUEUE_TIMEOUT; every 503 says when to retry."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trio_lingma.backend.fake import FakeLingma
from trio_lingma.backend.gateway import Gateway
from trio_lingma.backend.instance import Instance, InstanceState
from trio_lingma.errors import QueueFull, UpstreamUnavailable
from trio_lingma.protocol.events import Finish

from .pool_support import Pool, chat, make_settings, open_pool, text_of


async def test_a_request_during_a_restart_waits_for_the_instance(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, restart_initial=2.0), 1)
    pool.fakes[0].kill()
    await pool.settle()
    assert pool.gw.instances[0].state is InstanceState.BACKOFF
    began = trio.current_time()
    events = await pool.ask("during the restart")
    assert text_of(events) == "Echo: during the restart" and isinstance(events[-1], Finish)
    assert trio.current_time() == began + 2.0  # the backoff, not a 503
    assert pool.gw.instances[0].life == 2
    await pool.settle()
    pool.assert_idle()


async def test_waiting_requests_count_against_the_queue_and_time_out_with_retry_after(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, restart_initial=30.0, restart_max=30.0, queue_timeout=5.0,
                             queue_size=1, per_key_concurrency=0)
    pool = await open_pool(nursery, settings, 1)
    pool.fakes[0].kill()
    await pool.settle()
    began = trio.current_time()
    async with trio.open_nursery() as inner:
        async def waiter() -> None:
            with pytest.raises(UpstreamUnavailable) as info:
                await pool.ask("waits")
            assert (info.value.status, info.value.retry_after) == (503, 30.0)
            assert trio.current_time() == began + 5.0 and "5 s" in info.value.message

        inner.start_soon(waiter)
        await pool.settle()
        assert pool.gw.statistics().queued == 1
        with pytest.raises(QueueFull) as full:
            await pool.ask("one too many")
        assert full.value.retry_after is not None
    await pool.settle()
    pool.assert_idle()


async def test_before_the_first_instance_is_ready_requests_wait_for_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_timeout=5.0, per_key_concurrency=0)
    fake = FakeLingma()
    fake.start_delay = 3.0
    gw = Gateway(settings, instances=[Instance(0, settings, connector=fake.connector)])
    await nursery.start(gw.serve)
    began = trio.current_time()
    with pytest.raises(UpstreamUnavailable) as info:
        gw.resolve_model("qwen3-coder")  # synchronous callers (count_tokens) are told when to retry
    assert info.value.retry_after is not None
    events = await Pool(gw, [fake]).ask("first")
    assert text_of(events) == "Echo: first" and trio.current_time() == began + 3.0


async def test_no_wait_when_no_instance_will_come_back(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_timeout=5.0)
    fake = FakeLingma()
    fake.start_delay = 60.0
    gw = Gateway(settings, instances=[Instance(0, settings, connector=fake.connector)])
    async with trio.open_nursery() as inner:  # the pool ran and stopped: its instance is STOPPED
        inner.start_soon(gw.serve)
        await trio.testing.wait_all_tasks_blocked()
        inner.cancel_scope.cancel()
    assert gw.instances[0].state is InstanceState.STOPPED
    began = trio.current_time()
    with pytest.raises(UpstreamUnavailable) as info:
        async with gw.open_turn(chat("nobody")):
            pass
    assert trio.current_time() == began and info.value.retry_after is not None
