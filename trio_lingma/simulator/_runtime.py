"""State shared by every connection of one running simulator.

It owns the things that outlive a single connection or request: the audit state, the log,
the cancel scopes of running turns (so ``chat/stop`` can end a turn started by another task)
and the slots where ``tool/invokeResult`` answers meet the turn waiting for them.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import trio

from ._log import LingmaLog
from ._profile import DEFAULT, Profile
from ._state import SimulatorState

__all__ = ["Simulator", "Timeouts", "ToolSlot"]


@attrs.frozen(kw_only=True)
class Timeouts:
    ack: float = 3.0  # a push not answered within this is logged "no response from client"
    tool: float = 5.0  # how long a tool call waits for ack + tool/invokeResult


@attrs.define
class ToolSlot:
    """Where the client's ``tool/invokeResult`` params land for one toolCallId."""

    event: trio.Event = attrs.field(factory=trio.Event)
    value: dict[str, Any] | None = None


class Simulator:
    """One simulated binary: its state, log, running turns and pending tool calls."""

    def __init__(
        self,
        *,
        log: LingmaLog,
        timeouts: Timeouts,
        exit_scope: trio.CancelScope,
        exit_on_crash: bool,
        auth_status: int = 2,
        profile: Profile = DEFAULT,
    ) -> None:
        self.log = log
        self.auth_status = auth_status
        self.profile = profile
        self.timeouts = timeouts
        self.state = SimulatorState()
        self._exit_scope = exit_scope
        self._exit_on_crash = exit_on_crash
        self._turns: dict[str, trio.CancelScope] = {}
        self._tools: dict[str, ToolSlot] = {}
        self._connections = 0

    def __repr__(self) -> str:
        return f"<Simulator turns={len(self._turns)} tools={len(self._tools)} {self.state!r}>"

    def next_connection_id(self) -> int:
        self._connections += 1
        return self._connections

    def open_turn(self, request_id: str) -> trio.CancelScope:
        """The scope a turn runs in; created now so a very early ``chat/stop`` still works."""
        scope = self._turns[request_id] = trio.CancelScope()
        return scope

    def close_turn(self, request_id: str, scope: trio.CancelScope) -> None:
        if self._turns.get(request_id) is scope:
            del self._turns[request_id]

    def stop_turn(self, request_id: str) -> bool:
        scope = self._turns.get(request_id)
        if scope is not None:
            scope.cancel()
        return scope is not None

    def expect_tool_result(self, tool_call_id: str) -> ToolSlot:
        slot = self._tools[tool_call_id] = ToolSlot()
        return slot

    def forget_tool(self, tool_call_id: str) -> None:
        self._tools.pop(tool_call_id, None)

    def deliver_tool_result(self, tool_call_id: str, params: dict[str, Any]) -> bool:
        slot = self._tools.get(tool_call_id)
        if slot is None or slot.event.is_set():
            return False
        slot.value = params
        slot.event.set()
        return True

    def request_exit(self) -> None:
        """LSP ``exit``: stop the whole simulator (the CLI then exits with status 0)."""
        self.log.info("exit notification received, shutting down")
        self._exit_scope.cancel()

    @property
    def exit_on_crash(self) -> bool:
        return self._exit_on_crash

    def crash_process(self) -> None:
        self.log.error("simulated crash: exiting abruptly")
        self.log.close()
        os._exit(1)
