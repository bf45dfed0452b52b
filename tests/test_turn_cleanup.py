"""Cancellation gaps closed: whatever ends a request, its report is written, its upstream turn
is stopped and ``statistics()`` returns to idle (MockClock, fake runtimes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_lingma.backend.gateway import TurnReport
from trio_lingma.backend.stream import Attempt
from trio_lingma.errors import UpstreamClosed, UpstreamTimeout
from trio_lingma.http.app import create_app

from .pool_support import make_settings, open_pool


async def test_a_request_is_reported_even_when_closing_its_turn_fails(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    reports: list[TurnReport] = []
    pool.gw.observers.append(reports.append)

    async def broken_close(self: Attempt) -> None:  # a dialect whose turn clean-up fails
        await self._stack.aclose()
        raise UpstreamClosed("the runtime went away while the turn was closed")

    monkeypatch.setattr(Attempt, "close_turn", broken_close)
    with pytest.raises(UpstreamClosed):
        await pool.ask("hi")
    assert [(r.model, r.ok) for r in reports] == [("qwen3-coder", True)]
    await pool.settle()
    pool.assert_idle()


def _stream_scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "extensions": {}}


async def test_a_client_gone_before_the_first_body_byte_stops_the_turn_in_its_own_task(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path, per_key_concurrency=0), 1)
    app = create_app(pool.gw.settings)
    app.extensions["trio_lingma.gateway"] = pool.gw
    body = json.dumps({"model": "qwen3-coder", "stream": True,
                       "messages": [{"role": "user", "content": "[fake hang] hi"}]}).encode()
    gone = trio.Event()
    sent: list[str] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.start":
            gone.set()  # the client goes away while the headers are being sent
            await trio.sleep_forever()

    with trio.fail_after(10):
        await app(_stream_scope("/v1/chat/completions"), receive, send)  # type: ignore[arg-type]
    (ask,) = pool.fakes[0].asks
    assert sent == ["http.response.start"]
    # stopped by the request's own task before it ended, not later by the garbage collector
    assert pool.fakes[0].stops == [ask["requestId"]]
    await pool.settle()
    assert pool.fakes[0].deleted == [ask["sessionId"]]
    pool.assert_idle()


async def test_a_request_cancelled_while_chat_ask_is_unanswered_stops_the_turn(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 1)
    pool.fakes[0].ask_delay = 10.0  # Lingma got the question but answers the call late
    with trio.move_on_after(3.0):  # the client goes away meanwhile
        await pool.ask("hi")
    (ask,) = pool.fakes[0].asks
    await pool.settle()
    assert pool.fakes[0].stops == [ask["requestId"]]
    await trio.sleep(10.0)
    await pool.settle()
    assert pool.fakes[0].sessions == {} and pool.gw.idle()
    pool.assert_idle()


async def test_a_timed_out_chat_ask_is_stopped_and_not_retried_on_a_second_runtime(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, tmp_path: Path) -> None:
    pool = await open_pool(nursery, make_settings(tmp_path), 2)
    pool.fakes[0].ask_delay = 60.0  # longer than FIRST_TOKEN_TIMEOUT (30 s), the call's bound
    began = trio.current_time()
    with pytest.raises(UpstreamTimeout):
        await pool.ask("hi")
    assert trio.current_time() == began + 30.0
    (ask,) = pool.fakes[0].asks
    assert pool.fakes[1].asks == []  # no second runtime answers a question the first may be answering
    await pool.settle()
    assert pool.fakes[0].stops == [ask["requestId"]]
    await trio.sleep(60.0)
    await pool.settle()
    pool.assert_idle()
