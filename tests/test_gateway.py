"""The pool under MockClock with fake in-memory runtimes: reuse, backpressure, health, and
cancellation at every phase returning everything to idle. No process, no socket, no thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from trio_lingma.backend.instance import InstanceState
from trio_lingma.errors import QueueFull, QueueTimeout
from trio_lingma.protocol.events import Event, Finish, StreamError

from .pool_support import Pool, chat, make_settings, open_pool, text_of


@pytest.fixture
async def pool3(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Pool]:
    yield await open_pool(nursery, make_settings(tmp_path), 3)


async def test_follow_up_sends_only_the_new_turn_into_the_same_session(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    first = await pool3.ask("hi")
    assert text_of(first) == "Echo: hi"
    second = await pool3.ask("hi", "Echo: hi", "and more")
    assert text_of(second) == "Echo: and more"
    one, two = pool3.fakes[0].asks  # least-in-flight ties go to index 0, then affinity
    assert (one["isReply"], two["isReply"]) == (False, True)
    assert two["sessionId"] == one["sessionId"] and two["questionText"] == "and more"
    assert pool3.gw.statistics().cache.hits == 1
    await pool3.settle()
    assert pool3.fakes[0].deleted == []  # kept for the third turn
    pool3.assert_idle()


async def test_second_of_two_concurrent_same_prefix_requests_gets_a_fresh_session(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    await pool3.ask("hi")
    history = ("hi", "Echo: hi")
    async with trio.open_nursery() as nursery:
        async with pool3.gw.open_turn(chat(*history, "first [fake hang]")) as hanging:
            nursery.start_soon(hanging.receive)
            second = await pool3.ask(*history, "second")
            nursery.cancel_scope.cancel()
    asks = pool3.all_asks()
    reused, fresh = asks[1], asks[2]
    assert reused["isReply"] and reused["sessionId"] == asks[0]["sessionId"]
    assert not fresh["isReply"] and fresh["sessionId"] != reused["sessionId"]
    assert fresh["questionText"].startswith("Conversation so far:")
    assert text_of(second).startswith("Echo: Conversation so far:")
    await pool3.settle()
    # the abandoned reused session was stopped and deleted upstream
    assert reused["requestId"] in pool3.fakes[0].stops
    assert reused["sessionId"] in pool3.fakes[0].deleted
    pool3.assert_idle()


async def test_ttl_expiry_deletes_the_upstream_session_at_the_exact_time(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    start = trio.current_time()
    await pool3.ask("hi")
    sid = pool3.fakes[0].asks[0]["sessionId"]
    await trio.sleep(150)
    assert pool3.fakes[0].deleted == [sid]
    assert pool3.fakes[0].deleted_at == [start + 100.0]
    assert pool3.gw.statistics().cache.expirations == 1


async def test_lru_eviction_deletes_the_least_recently_used(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, session_cache_size=2), 1)
    await pool.ask("a")
    await pool.ask("b")
    await pool.ask("a", "Echo: a", "again")  # a is used (and stored again): b is now the oldest
    await pool.ask("c")
    await pool.settle()
    sessions = {a["questionText"]: a["sessionId"] for a in pool.fakes[0].asks}
    assert sessions["again"] == sessions["a"]
    assert pool.fakes[0].deleted == [sessions["b"]]
    await pool.ask("d")
    await pool.settle()
    assert pool.fakes[0].deleted == [sessions["b"], sessions["a"]]
    assert pool.gw.statistics().cache.evictions == 2


async def test_queue_full_and_queue_timeout_carry_retry_after(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, per_key_concurrency=0), 1)
    await pool.ask("[fake slow 2] warm up")  # one turn of 4 s: the mean service time
    assert pool.gw.service.mean == 4.0
    errors: list[Exception] = []

    async def queued() -> None:
        with pytest.raises(QueueTimeout) as info:
            await pool.ask("queued")
        errors.append(info.value)

    async with trio.open_nursery() as inner:
        async with pool.gw.open_turn(chat("[fake hang]")):
            began = trio.current_time()
            inner.start_soon(queued)
            inner.start_soon(queued)
            await pool.settle()
            assert pool.gw.statistics().queued == 2
            with pytest.raises(QueueFull) as full:
                await pool.ask("one too many")
            assert full.value.retry_after == 12.0  # 4 s × position 3 / 1 ticket
            await trio.sleep(10)
    assert trio.current_time() == began + 10
    assert sorted(e.retry_after for e in errors) == [4.0, 8.0]
    assert all(e.status == 503 for e in errors) and full.value.status == 429
    await pool.settle()
    pool.assert_idle()


async def test_per_key_limit(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    async with pool3.gw.open_turn(chat("[fake hang]"), api_key="k1"):
        with pytest.raises(QueueFull):
            await pool3.ask("x", api_key="k1")
        assert text_of(await pool3.ask("x", api_key="k2")) == "Echo: x"
    await pool3.settle()  # tickets come back once the sessions are deleted upstream
    pool3.assert_idle()


@pytest.mark.parametrize("phase", ["queued", "first token", "mid-stream"])
async def test_cancellation_at_every_phase_returns_to_idle(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path, phase: str
) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, per_key_concurrency=0), 1)
    script = {"queued": "[fake hang]", "first token": "[fake hang]", "mid-stream": "[fake stall]"}[phase]
    got: list[Event] = []

    async def victim() -> None:
        async with pool.gw.open_turn(chat(f"victim {script}")) as stream:
            got.extend(await stream.receive())
            await stream.receive()

    async with trio.open_nursery() as inner:
        async with pool.gw.open_turn(chat("[fake hang]")) if phase == "queued" else _nothing():
            inner.start_soon(victim)
            await pool.settle()
            expected_queue = 1 if phase == "queued" else 0
            assert pool.gw.statistics().queued == expected_queue
            inner.cancel_scope.cancel()
    await pool.settle()
    asks = pool.fakes[0].asks
    if phase == "mid-stream":
        assert text_of(got) and asks[0]["requestId"] in pool.fakes[0].stops
    if phase == "first token":
        assert got == [] and asks[0]["requestId"] in pool.fakes[0].stops
    if phase == "queued":
        assert len(asks) == 1  # the victim never reached upstream; the holder was stopped
    assert sorted(pool.fakes[0].deleted) == sorted(a["sessionId"] for a in asks)
    pool.assert_idle()


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_first_token_deadline(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    began = trio.current_time()
    events = await pool.ask("[fake hang]")
    assert trio.current_time() == began + 30.0
    assert isinstance(events[-1], StreamError) and "first token" in events[-1].message
    await pool.settle()
    assert pool.fakes[0].stops == [pool.fakes[0].asks[0]["requestId"]]
    pool.assert_idle()


async def test_probe_based_recovery(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 2)
    inst = pool.gw.instances[0]
    began = trio.current_time()
    pool.fakes[0].answer_pings = False
    while inst.state is InstanceState.READY:
        await inst.state_changed.wait()
    assert (inst.state, trio.current_time() - began) == (InstanceState.UNHEALTHY, 15.0)
    await pool.ask("while unhealthy")  # not sent to the unhealthy instance
    assert [a["questionText"] for a in pool.fakes[1].asks] == ["while unhealthy"]
    await trio.sleep(5)
    pool.fakes[0].answer_pings = True  # no timer brings it back: only the next probe
    assert inst.state is InstanceState.UNHEALTHY
    await inst.state_changed.wait()
    assert (inst.state, trio.current_time() - began) == (InstanceState.READY, 25.0)
    assert inst.life == 1 and pool.fakes[0].lives == 1


async def test_an_instance_busy_streaming_is_not_unhealthy(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    inst = pool.gw.instances[0]
    states: list[tuple[float, InstanceState]] = []

    async def watch() -> None:
        while True:
            await inst.state_changed.wait()
            states.append((trio.current_time(), inst.state))

    nursery.start_soon(watch)
    began = trio.current_time()
    pool.fakes[0].answer_pings = False  # its pings wait behind the answer, as under a flood
    events = await pool.ask("[fake drip 36]")
    assert text_of(events) == "." * 36 and trio.current_time() - began == 36.0
    assert states == []  # probes at 10-15 s and 25-30 s timed out, but chunks kept coming
    while inst.state is InstanceState.READY:
        await inst.state_changed.wait()
    await pool.settle()
    assert states == [(began + 45.0, InstanceState.UNHEALTHY)]  # silent since 36 s: probe at 40-45 s


async def test_failed_probes_restart_the_instance(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    inst = pool.gw.instances[0]
    began = trio.current_time()
    pool.fakes[0].answer_pings = False
    while inst.state is not InstanceState.BACKOFF:
        await inst.state_changed.wait()
    assert trio.current_time() - began == 45.0  # three probes of 10 s + 5 s timeout
    pool.fakes[0].answer_pings = True
    while not inst.ready:
        await inst.state_changed.wait()
    assert trio.current_time() - began == 45.5 and inst.life == 2 and inst.restarts == 1


async def test_fallback_when_the_affine_instance_dies(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, restart_initial=30.0, restart_max=30.0), 2)
    await pool.ask("hi")
    pool.fakes[0].kill()
    await pool.settle()
    assert pool.gw.instances[0].state is InstanceState.BACKOFF
    events = await pool.ask("hi", "Echo: hi", "again")
    assert isinstance(events[-1], Finish)
    (ask,) = pool.fakes[1].asks
    assert not ask["isReply"] and ask["questionText"].startswith("Conversation so far:")
    pool.assert_idle()


@pytest.mark.parametrize("fault", ["crash", "refuse", "error"])
async def test_failure_before_any_content_is_retried_once_elsewhere(
    autojump_clock: trio.testing.MockClock, pool3: Pool, fault: str) -> None:
    pool3.fakes[0].fail_next_ask = fault
    events = await pool3.ask("hello")
    assert text_of(events) == "Echo: hello" and isinstance(events[-1], Finish)
    assert len(pool3.fakes[0].asks) == 1 and len(pool3.fakes[1].asks) == 1
    await pool3.settle()
    pool3.assert_idle()


async def test_no_second_retry(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    pool3.fakes[0].fail_next_ask = "refuse"
    pool3.fakes[1].fail_next_ask = "error"
    events = await pool3.ask("hello")
    assert isinstance(events[-1], StreamError) and "500" in events[-1].message
    assert pool3.fakes[2].asks == []
    await pool3.settle()
    pool3.assert_idle()


async def test_statistics_repr(
    autojump_clock: trio.testing.MockClock, pool3: Pool) -> None:
    async with pool3.gw.open_turn(chat("[fake hang]")):
        assert repr(pool3.gw) == "<Pool ready=3/3 starting=0 in_flight=1 queued=0>"


async def test_mode_suffix_picks_the_mode_and_its_own_sessions(
    autojump_clock: trio.testing.MockClock, pool3: Pool
) -> None:
    async with pool3.gw.open_turn(attrs.evolve(chat("hi"), model="qwen3-coder:agent")) as stream:
        await stream.collect()
    await pool3.ask("hi", "Echo: hi", "more")  # same text, chat mode: not the agent session
    first, second = pool3.all_asks()
    assert (first["mode"], second["mode"]) == ("agent", "chat")
    assert not second["isReply"] and second["sessionId"] != first["sessionId"]
