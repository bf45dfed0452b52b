"""One request's event stream (backend/stream.py) under MockClock with a fake runtime: the
idle and whole-request deadlines and the drain's abort, each at an exact virtual time, each
stopping the upstream turn and leaving the pool idle."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.test_gateway import chat, make_settings, open_pool, text_of
from trio_lingma.protocol.events import ErrorKind, StreamError


async def test_idle_timeout_ends_a_stream_that_went_silent_after_content(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, idle_timeout=7.0), 1)
    async with pool.gw.open_turn(chat("[fake stall] talk then stop")) as stream:
        first = await stream.receive()
        got_first = trio.current_time()
        assert text_of(first).startswith("Echo")
        rest = await stream.collect()
    assert trio.current_time() == got_first + 7.0
    assert isinstance(rest[-1], StreamError) and rest[-1].kind is ErrorKind.UPSTREAM_TIMEOUT
    assert "the next chunk" in rest[-1].message
    await pool.settle()
    assert pool.fakes[0].stops == [pool.fakes[0].asks[0]["requestId"]]
    pool.assert_idle()


async def test_request_timeout_bounds_a_stream_that_keeps_trickling(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    # a chunk every 20 s never trips the 30 s idle deadline; the 35 s total one does
    settings = make_settings(tmp_path, idle_timeout=30.0, request_timeout=35.0)
    pool = await open_pool(nursery, settings, 1)
    began = trio.current_time()
    events = await pool.ask("[fake slow 20] trickle")
    assert trio.current_time() == began + 35.0
    assert text_of(events)  # the first chunk (at 20 s) got through
    assert isinstance(events[-1], StreamError) and events[-1].kind is ErrorKind.UPSTREAM_TIMEOUT
    assert "the whole request" in events[-1].message
    await pool.settle()
    assert pool.fakes[0].stops == [pool.fakes[0].asks[0]["requestId"]]
    pool.assert_idle()


async def test_abort_ends_a_waiting_stream_at_once_with_an_overloaded_error(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    async with pool.gw.open_turn(chat("[fake hang] wait for it")) as stream:
        async with trio.open_nursery() as inner:
            aborted_at = trio.current_time() + 5.0

            async def abort_later() -> None:
                await trio.sleep(5.0)
                stream.abort("The gateway is shutting down; retry the request.")

            inner.start_soon(abort_later, name="abort")
            events = await stream.collect()
        assert trio.current_time() == aborted_at  # not the 30 s first-token deadline
        stream.abort("again")  # a second abort of an ended stream changes nothing
        assert await stream.receive() == []
    assert events == [StreamError(kind=ErrorKind.OVERLOADED,
                                  message="The gateway is shutting down; retry the request.")]
    await pool.settle()
    assert pool.fakes[0].stops == [pool.fakes[0].asks[0]["requestId"]]
    pool.assert_idle()
