"""Baseline: drive simulator instances directly over their WebSocket JSON-RPC protocol.

``python tools/_wsload.py run`` (spec as JSON on stdin, like ``_loadgen.py``) opens one
connection per simulator port — as the gateway does — does the handshake, then runs
``concurrency`` clients spread over the connections, each sending ``chat/ask`` with the same
prompts the HTTP load uses, until ``requests`` or ``duration`` is reached. A sample per turn:
``[ok, ttft, total, answer_pushes]`` where ttft is the first ``chat/answer`` with text and
total is ``chat/finish``. Every server→client request is answered at once (pitfall 1), with
the answers the gateway gives (``reply_to_server_request``). ``cpu`` is this process's CPU seconds for the
measured span (the baseline of the gateway's cost per relayed event).

``python tools/_wsload.py stats`` prints ``sim/stats`` of each port in ``ports``.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import uuid
from typing import Any

import trio
import trio_websocket

from trio_lingma.protocol import jsonrpc
from trio_lingma.protocol.legacy import ask_params, initialize_params, reply_to_server_request


class _Link:
    """One connection: a reader task routing pushes by requestId, one send lock."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.peer = jsonrpc.Peer()
        self.lock = trio.Lock()
        self.calls: dict[Any, trio.MemorySendChannel[Any]] = {}
        self.turns: dict[str, trio.MemorySendChannel[Any]] = {}

    async def send(self, frame: str) -> None:
        async with self.lock:
            await self.ws.send_message(frame)

    async def call(self, method: str, params: Any = None) -> Any:
        id_, frame = self.peer.send_request(method, params)
        send, receive = trio.open_memory_channel[Any](1)
        self.calls[id_] = send
        await self.send(frame)
        return await receive.receive()

    async def read(self) -> None:
        while True:
            for msg in self.peer.receive_data(await self.ws.get_message()):
                if isinstance(msg, (jsonrpc.Response, jsonrpc.ErrorResponse)):
                    channel = self.calls.pop(msg.id, None)
                    if channel is not None:
                        channel.send_nowait(getattr(msg, "result", None))
                elif isinstance(msg, jsonrpc.Request):
                    reply = reply_to_server_request(msg.method, msg.params)
                    await self.send(self.peer.send_result(msg.id, reply))
                    self._route(msg)

    def _route(self, msg: jsonrpc.Request) -> None:
        params = msg.params if isinstance(msg.params, dict) else {}
        channel = self.turns.get(str(params.get("requestId", "")))
        if channel is not None:
            channel.send_nowait((msg.method, params))


async def _turn(link: _Link, question: str, model_key: str) -> list[Any]:
    request_id = uuid.uuid4().hex
    send, receive = trio.open_memory_channel[Any](100_000)
    link.turns[request_id] = send
    started = time.perf_counter()
    ttft, pushes = None, 0
    try:
        params = ask_params(request_id=request_id, session_id=str(uuid.uuid4()),
                            question=question, model_key=model_key, is_reply=False)
        result = await link.call("chat/ask", params)
        if not (isinstance(result, dict) and result.get("isSuccess")):
            return [False, None, time.perf_counter() - started, 0]
        async for method, params in receive:
            if method == "chat/answer" and params.get("text"):
                pushes += 1
                if ttft is None:
                    ttft = time.perf_counter() - started
            elif method == "chat/finish":
                ok = params.get("statusCode") == 200
                return [ok, ttft, time.perf_counter() - started, pushes]
    finally:
        del link.turns[request_id]
    return [False, ttft, time.perf_counter() - started, pushes]


async def _client(link: _Link, spec: dict[str, Any], counter: itertools.count,
                  deadline: float, samples: list[list[Any]]) -> None:
    prompts = spec["prompts"]
    while trio.current_time() < deadline:
        n = next(counter)
        if n >= spec["requests"]:
            return
        question = prompts[n % len(prompts)].replace("{n}", str(n))
        with trio.move_on_after(spec["timeout"]) as scope:
            samples.append(await _turn(link, question, spec["model_key"]))
        if scope.cancelled_caught:
            samples.append([False, None, spec["timeout"], 0])


async def _open_link(nursery: trio.Nursery, port: int, workdir: str) -> _Link:
    ws = await trio_websocket.connect_websocket_url(
        nursery, f"ws://127.0.0.1:{port}/", max_message_size=64 * 1024 * 1024)
    link = _Link(ws)
    nursery.start_soon(link.read, name=f"baseline reader :{port}")
    await link.call("initialize", initialize_params(workdir, client_version="bench"))
    return link


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    samples: list[list[Any]] = []
    counter = itertools.count()
    async with trio.open_nursery() as nursery:
        links = [await _open_link(nursery, p, spec.get("workdir", "/tmp")) for p in spec["ports"]]
        started, cpu = trio.current_time(), time.process_time()
        deadline = started + spec["duration"]
        async with trio.open_nursery() as clients:
            for i in range(spec["concurrency"]):
                clients.start_soon(_client, links[i % len(links)], spec, counter, deadline,
                                   samples, name=f"baseline client {i}")
        elapsed, cpu = trio.current_time() - started, time.process_time() - cpu
        nursery.cancel_scope.cancel()
    return {"elapsed": elapsed, "samples": samples, "cpu": cpu}


async def stats(spec: dict[str, Any]) -> dict[str, Any]:
    """``sim/stats`` of every port (None for a port that does not answer within 5 s)."""
    return {"stats": await call_each(spec["ports"], "sim/stats")}


async def call_each(ports: list[int], method: str) -> list[Any]:
    """``method``'s result from every port (None for a port that does not answer within 5 s)."""
    out: list[Any] = []
    for port in ports:
        out.append(None)
        with trio.move_on_after(5):
            try:
                async with trio.open_nursery() as nursery:
                    link = await _open_link(nursery, port, "/tmp")
                    out[-1] = await link.call(method)
                    nursery.cancel_scope.cancel()
            except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed):
                pass
    return out


def main() -> None:
    command = sys.argv[1]
    spec = json.loads(sys.stdin.readline())
    result = trio.run(run if command == "run" else stats, spec)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
