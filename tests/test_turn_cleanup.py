"""Cancellation gaps closed: whatever ends a request, its report is written, its upstream turn
is stopped and ``statistics()`` returns to idle (MockClock, fake runtimes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trio_lingma.backend.gateway import TurnReport
from trio_lingma.backend.stream import Attempt
from trio_lingma.errors import UpstreamClosed

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
