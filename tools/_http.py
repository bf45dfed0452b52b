"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation.

Theory of operation
-------------------
httpx's pool became the bottleneck of a load generator at 64 concurrent connections on a
2-core machine (stack-notes.md, "Load generation"), so the tools speak HTTP/1.1 themselves:
one connection per simulated client, ``Content-Length`` requests, and responses read either
by ``Content-Length`` or by ``Transfer-Encoding: chunked`` (what hypercorn uses for SSE). For
a stream the client splits the body into SSE events (blank-line separated) as they arrive, so
it can time the first content event and count relayed events without buffering. Stdlib only.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

__all__ = ["Connection", "Reply", "first_content", "parse_sse"]


class Reply:
    """One response: status, headers, body bytes (non-stream), SSE events (stream), timings."""

    __slots__ = ("status", "headers", "body", "events", "ttft", "total", "complete")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.events: list[bytes] = []
        self.ttft: float | None = None
        self.total = 0.0
        self.complete = False  # the whole body arrived (terminating chunk / full length)

    def json(self) -> Any:
        return json.loads(self.body)


def parse_sse(event: bytes) -> tuple[str | None, str]:
    """``(event name, data)`` of one SSE event block."""
    name, data = None, []
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            name = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            data.append(line[5:].strip().decode())
    return name, "\n".join(data)


def first_content(event: bytes) -> bool:
    """Whether an SSE event carries answer text (OpenAI delta.content, Anthropic text_delta)."""
    if b"text_delta" in event:
        return True
    if b'"content":"' not in event:
        return False
    _, data = parse_sse(event)
    try:
        choices = json.loads(data).get("choices") or [{}]
    except ValueError:
        return False
    return bool((choices[0].get("delta") or {}).get("content"))


class Connection:
    """One keep-alive connection to ``host:port``; reconnects when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    def abort(self) -> None:
        """Drop the connection at once (a client that goes away)."""
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
        *, stream_until_content: bool = False,
    ) -> Reply:
        """Send one request and read its whole response (or, with ``stream_until_content``,
        only up to the first content event; the caller then owns the open connection)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(body)}", "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        reply = Reply()
        started = time.perf_counter()
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self._read_head(reply)
        if stream_until_content:
            await self._read_body(reply, started, stop_at_content=True)
            return reply
        await self._read_body(reply, started)
        reply.total = time.perf_counter() - started
        if reply.headers.get("connection", "").lower() == "close":
            await self.close()
        return reply

    async def _read_head(self, reply: Reply) -> None:
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        reply.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                reply.headers[key.strip().lower()] = value.strip()

    async def _read_body(self, reply: Reply, started: float, stop_at_content: bool = False) -> None:
        assert self._reader is not None
        if "content-length" in reply.headers:
            reply.body = await self._reader.readexactly(int(reply.headers["content-length"]))
            reply.complete = True
            if reply.ttft is None:
                reply.ttft = time.perf_counter() - started
            return
        if reply.headers.get("transfer-encoding", "").lower() != "chunked":
            reply.body = await self._reader.read()
            await self.close()
            return
        buffer = b""
        while True:
            size = int((await self._reader.readline()).split(b";")[0], 16)
            data = await self._reader.readexactly(size + 2)
            if size == 0:
                reply.complete = True
                return
            buffer += data[:-2]
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                reply.events.append(event)
                if reply.ttft is None and first_content(event):
                    reply.ttft = time.perf_counter() - started
                    if stop_at_content:
                        return
