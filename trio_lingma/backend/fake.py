"""A scripted in-memory Lingma runtime for deterministic tests (no process, no socket).

:meth:`FakeLingma.connector` plugs into :class:`~trio_lingma.backend.instance.Instance` as its
connector: every life of the instance gets a fresh in-memory link
(:func:`~trio_lingma.backend.transport.memory_transport_pair`) with this fake in the server
role of the same sans-IO :class:`~trio_lingma.protocol.jsonrpc.Peer`. Because nothing here
waits on threads, processes or sockets, tests can run it under ``MockClock`` with autojump.

Turns are scripted by the question text:

* ``[fake hang]`` — accept the ask, then send nothing (until ``chat/stop``);
* ``[fake stall]`` — send one answer chunk, then nothing;
* ``[fake slow S]`` — sleep S seconds before each push;
* ``[fake drip N]`` — N answer chunks one second apart (a long answer still streaming);
* otherwise answer ``Echo: <question>`` in two chunks and finish with status 200.

One-shot faults for the next ask are set on the fake: ``fail_next_ask = "crash"`` (drop the
connection without answering), ``"refuse"`` (``isSuccess: false``), ``"error"`` (a
``chat/finish`` with status 500 before any content). ``answer_pings = False`` freezes probes.
``delete_delay`` makes every ``chat/deleteSessionById`` take that long (``max_deleting`` records
how many ran at once); ``start_delay`` delays each life's connection (a runtime starting up); ``ask_delay``
answers ``chat/ask`` that late (a turn stopped meanwhile then never runs);
``sessions`` holds every session that finished a turn and was not deleted.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ..protocol import jsonrpc
from .cleanup import shielded_cleanup
from .transport import MemoryTransport, memory_transport_pair

if TYPE_CHECKING:
    from .instance import Instance

__all__ = ["FakeLingma"]

MODELS = {"chat": [{"key": "qwen3-coder", "displayName": "qwen3-coder"}]}
_DIRECTIVE = re.compile(r"\[fake (\w+)(?: ([\d.]+))?\]")


class FakeLingma:
    """One fake runtime; it may serve several lives of one instance in turn."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.asks: list[dict[str, Any]] = []
        self.stops: list[str] = []
        self.deleted: list[str] = []
        self.deleted_at: list[float] = []
        self.sessions: dict[str, int] = {}
        self.answer_pings = True
        self.delete_delay = 0.0
        self.start_delay = 0.0
        self.ask_delay = 0.0
        self.deleting = self.max_deleting = 0
        self.fail_next_ask: str | None = None
        self.lives = 0
        self._turns: dict[str, trio.CancelScope] = {}
        self._life: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<FakeLingma {self.name} lives={self.lives} asks={len(self.asks)}>"

    def kill(self) -> None:
        """End the current connection, like a process that died."""
        if self._life is not None:
            self._life.cancel()

    @asynccontextmanager
    async def connector(self, instance: Instance) -> AsyncIterator[MemoryTransport]:
        await trio.sleep(self.start_delay)
        client_end, server_end = memory_transport_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, server_end, name=f"{self.name} server")
            try:
                yield client_end
            finally:
                nursery.cancel_scope.cancel()

    async def _serve(self, transport: MemoryTransport) -> None:
        self.lives += 1
        peer = jsonrpc.Peer(first_id=10_000)
        try:
            with trio.CancelScope() as self._life:
                async with trio.open_nursery() as nursery:
                    while True:
                        for message in peer.receive_data(await transport.receive()):
                            if isinstance(message, jsonrpc.Request):
                                nursery.start_soon(self._answer, transport, peer, message,
                                                   name=f"{self.name} {message.method}")
        finally:
            with shielded_cleanup(1.0):
                await transport.aclose()

    async def _answer(self, transport: MemoryTransport, peer: jsonrpc.Peer, message: jsonrpc.Request) -> None:
        params = message.params if isinstance(message.params, dict) else {}
        match message.method:
            case "ping" if not self.answer_pings:
                await trio.sleep_forever()
            case "config/queryModels":
                result: Any = MODELS
            case "auth/status":
                result = {"status": 2}
            case "chat/ask":
                await self._ask(transport, peer, message, params)
                return
            case "chat/stop":
                self.stops.append(params.get("requestId", ""))
                scope = self._turns.get(params.get("requestId", ""))
                if scope is not None:
                    scope.cancel()
                result = {}
            case "chat/deleteSessionById":
                result = await self._delete(params.get("sessionId", ""))
            case _:
                result = None
        await transport.send(peer.send_result(message.id, result))

    async def _delete(self, session_id: str) -> bool:
        self.deleting += 1
        self.max_deleting = max(self.max_deleting, self.deleting)
        try:
            await trio.sleep(self.delete_delay)
        finally:
            self.deleting -= 1
        self.deleted.append(session_id)
        self.deleted_at.append(trio.current_time())
        return self.sessions.pop(session_id, None) is not None

    async def _ask(self, transport: MemoryTransport, peer: jsonrpc.Peer, message: jsonrpc.Request,
                   params: dict[str, Any]) -> None:
        self.asks.append(params)
        fault, self.fail_next_ask = self.fail_next_ask, None
        if fault == "crash":
            self.kill()
            return
        rid = params["requestId"]
        ok = fault != "refuse"
        if self.ask_delay:
            await trio.sleep(self.ask_delay)
            ok = ok and rid not in self.stops
        await transport.send(peer.send_result(message.id, {"requestId": rid, "isSuccess": ok,
                                                           "errorMessage": "" if ok else "refused"}))
        if ok:
            with trio.CancelScope() as self._turns[rid]:
                await self._turn(transport, peer, params, error=fault == "error")
            self._turns.pop(rid, None)
            if self._turns_cancelled(rid):
                await self._push(transport, peer, "chat/finish", params, reason="cancelled", statusCode=200)

    def _turns_cancelled(self, rid: str) -> bool:
        return rid in self.stops

    async def _turn(self, transport: MemoryTransport, peer: jsonrpc.Peer, params: dict[str, Any],
                    *, error: bool) -> None:
        question = params["questionText"]
        match = _DIRECTIVE.search(question)
        kind, arg = (match.group(1), match.group(2)) if match else ("echo", None)
        if error:
            await self._push(transport, peer, "chat/finish", params, reason="error", statusCode=500)
            return
        answer = f"Echo: {_DIRECTIVE.sub('', question).strip()}"
        chunks = [answer[: len(answer) // 2], answer[len(answer) // 2 :]]
        if kind == "drip":
            chunks, kind, arg = ["."] * int(arg or 1), "slow", "1"
        if kind == "hang":
            await trio.sleep_forever()
        for chunk in chunks:
            if kind == "slow":
                await trio.sleep(float(arg or 1))
            await self._push(transport, peer, "chat/answer", params, text=chunk)
            if kind == "stall":
                await trio.sleep_forever()
        sid = params["sessionId"]
        self.sessions[sid] = self.sessions.get(sid, 0) + 1
        await self._push(transport, peer, "chat/finish", params, reason="success", statusCode=200,
                         fullAnswer=answer)

    async def _push(self, transport: MemoryTransport, peer: jsonrpc.Peer, method: str,
                    params: dict[str, Any], **fields: Any) -> None:
        body = {"requestId": params["requestId"], "sessionId": params["sessionId"], **fields}
        await transport.send(peer.send_request(method, body)[1])
