"""Carry out a planned chat turn over a connection.

Theory of operation
-------------------
The plan (``_plan.py``) already fixed every push; this module only sends them, pauses, and
runs the tool round trip. The whole turn runs in a cancel scope registered under its
requestId, so ``chat/stop`` from any task cancels whatever the turn is waiting on (a pause, a
withheld push, a tool result, a hang) and the turn then ends with ``chat/finish`` reason
"cancelled" (Clawith's behaviour, lingma-protocol.md §3A "Cancel"). A client that
disconnects cancels the turn through the connection's nursery instead; nothing more is sent.

In the ``unanswered`` scenario each push waits for the previous one to be acknowledged,
reproducing pitfall 1 (a client that never answers sees the stream stall after one push).
"""

from __future__ import annotations

import time
from typing import Any

import trio

from ._connection import Connection
from ._plan import (
    Crash,
    Hang,
    InvokeTools,
    Notify,
    Pause,
    Push,
    Step,
    ToolCall,
    TurnPlan,
    cancelled_finish,
    tool_invoke,
    tool_result_sync,
)
from ._runtime import Simulator

__all__ = ["run_turn"]


async def run_turn(
    conn: Connection, sim: Simulator, plan: TurnPlan, scope: trio.CancelScope
) -> None:
    """Send the plan's steps; on ``chat/stop`` (``scope`` cancelled) finish as "cancelled"."""
    runner = _TurnRunner(conn, sim, plan)
    request_id = plan.ask.request_id
    started = time.monotonic()
    try:
        with scope:
            for step in plan.steps:
                await runner.execute(step)
        if scope.cancelled_caught:
            sim.log.info(f"chat stopped requestId: {request_id}")
            finish = cancelled_finish(plan, runner.answer_sent)
            await conn.push(finish.method, finish.params)
    finally:
        sim.close_turn(request_id, scope)
    cost = time.monotonic() - started
    sim.log.info(f"finish chat answer requestId: {request_id} cost: {cost:.1f}s")


class _TurnRunner:
    def __init__(self, conn: Connection, sim: Simulator, plan: TurnPlan) -> None:
        self._conn = conn
        self._sim = sim
        self._plan = plan
        self._answer: list[str] = []
        self._last_push: int | None = None

    @property
    def answer_sent(self) -> str:
        return "".join(self._answer)

    async def execute(self, step: Step) -> None:
        match step:
            case Push():
                await self._push(step)
            case Notify(method=method, params=params):
                await self._conn.notify(method, params)
            case Pause(seconds=seconds):
                await trio.sleep(seconds)
            case InvokeTools(calls=calls):
                await self._invoke_all(calls)
            case Hang():
                self._sim.log.info(f"simulated hang requestId: {self._plan.ask.request_id}")
                await trio.sleep_forever()
            case Crash():
                await self._crash()

    async def _push(self, push: Push) -> int:
        if self._plan.withhold_until_acked and self._last_push is not None:
            await self._conn.wait_acked(self._last_push)
        id_ = self._last_push = await self._conn.push(push.method, push.params)
        if push.method == "chat/answer":
            self._answer.append(push.params["text"])
        return id_

    async def _invoke_all(self, calls: tuple[ToolCall, ...]) -> None:
        async with trio.open_nursery() as nursery:
            for call in calls:
                nursery.start_soon(self._invoke, call, name=f"tool call {call.tool_call_id}")

    async def _invoke(self, call: ToolCall) -> None:
        """``tool/invoke`` (async:true), then its ack and ``tool/invokeResult``, bounded."""
        slot = self._sim.expect_tool_result(call.tool_call_id)
        try:
            invoke_id = await self._push(tool_invoke(self._plan, call))
            result: dict[str, Any] | None = None
            with trio.move_on_after(self._sim.timeouts.tool):
                await self._conn.wait_acked(invoke_id)
                await slot.event.wait()
                result = slot.value
            if result is None:
                self._sim.log.warn(f"tool call {call.tool_call_id}: no tool/invokeResult")
        finally:
            self._sim.forget_tool(call.tool_call_id)
        await self._push(tool_result_sync(self._plan, call, result))

    async def _crash(self) -> None:
        if self._sim.exit_on_crash:
            self._sim.crash_process()
        self._sim.log.error("simulated crash: dropping the connection")
        await self._conn.abort("simulated crash")
        await trio.sleep_forever()  # the closed connection cancels this turn
