"""Load generator process: ``python tools/_loadgen.py run|hold|serve`` (spec as JSON on stdin).

``run``: ``concurrency`` clients, each on its own keep-alive connection, send requests until
``requests`` were sent or ``duration`` seconds passed (both bounds always apply; every request
also has its own ``timeout``), then print one JSON object with a sample per request:
``[status, ttft, total, sse_events, complete]``. In a body, ``{n}`` is the request number and
``{prev}`` the one before (a follow-up of it).

``hold``: open ``concurrency`` streams, read each up to its first content event, print
``{"opened": n}``, keep them open until a line arrives on stdin or ``duration`` passes, then
drop them all and print the final summary.

``serve``: a trivial HTTP/1.1 server answering every request with a fixed small JSON body,
to measure this generator's own ceiling in the same run (stack-notes.md, "Load generation").

It runs in its own process so that its CPU does not share an event loop with the orchestrator.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

from _http import Connection

TRIVIAL_BODY = b'{"object":"chat.completion","choices":[{"message":{"content":"ok"}}]}'


async def _client(spec: dict[str, Any], counter: itertools.count, deadline: float,
                  samples: list[list[Any]]) -> None:
    conn = Connection(spec["host"], spec["port"])
    bodies = [b.encode() for b in spec["bodies"]]
    try:
        while time.monotonic() < deadline:
            n = next(counter)
            if n >= spec["requests"]:
                return
            body = bodies[n % len(bodies)].replace(b"{n}", str(n).encode()).replace(b"{prev}", str(n - 1).encode())
            samples.append(await _one(conn, spec, body))
    finally:
        conn.abort()


async def _one(conn: Connection, spec: dict[str, Any], body: bytes) -> list[Any]:
    started = time.perf_counter()
    try:
        reply = await asyncio.wait_for(
            conn.request("POST", spec["path"], body, spec["headers"]), spec["timeout"])
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        conn.abort()
        return [0, None, time.perf_counter() - started, 0, False]
    return [reply.status, reply.ttft, reply.total, len(reply.events), reply.complete]


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    samples: list[list[Any]] = []
    counter = itertools.count()
    started = time.monotonic()
    deadline = started + spec["duration"]
    await asyncio.gather(*(_client(spec, counter, deadline, samples)
                           for _ in range(spec["concurrency"])))
    return {"elapsed": time.monotonic() - started, "samples": samples}


async def _open_stream(spec: dict[str, Any], n: int) -> Connection | None:
    conn = Connection(spec["host"], spec["port"])
    body = spec["bodies"][n % len(spec["bodies"])].replace("{n}", str(n)).encode()
    try:
        reply = await asyncio.wait_for(conn.request(
            "POST", spec["path"], body, spec["headers"], stream_until_content=True), spec["timeout"])
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        conn.abort()
        return None
    if reply.status != 200 or reply.ttft is None:
        conn.abort()
        return None
    return conn


async def hold(spec: dict[str, Any]) -> dict[str, Any]:
    """Open streams in batches (not to overflow the listen backlog), hold, then drop them."""
    conns: list[Connection | None] = []
    for start in range(0, spec["concurrency"], 100):
        count = min(100, spec["concurrency"] - start)
        conns += await asyncio.gather(*(_open_stream(spec, start + i) for i in range(count)))
    opened = [c for c in conns if c is not None]
    print(json.dumps({"opened": len(opened), "failed": len(conns) - len(opened)}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), spec["duration"])
    except TimeoutError:
        pass
    for conn in opened:
        conn.abort()
    return {"opened": len(opened), "dropped": len(opened)}


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    response = head % len(TRIVIAL_BODY) + TRIVIAL_BODY
    try:
        while True:
            raw = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in raw.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(response)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        writer.close()


async def serve(spec: dict[str, Any]) -> None:
    server = await asyncio.start_server(_serve_one, "127.0.0.1", 0, backlog=4096)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    async with server:
        await asyncio.wait_for(server.serve_forever(), spec.get("duration", 600))


def main() -> None:
    command = sys.argv[1]
    spec = json.loads(sys.stdin.readline())
    if command == "serve":
        try:
            asyncio.run(serve(spec))
        except (TimeoutError, KeyboardInterrupt):
            pass
        return
    result = asyncio.run(run(spec) if command == "run" else hold(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
