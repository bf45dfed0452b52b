"""The wsproto WebSocket client against trio-websocket's server on loopback: frames, batching,
control frames, limits and closes."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
import trio_websocket

from trio_lingma.backend.transport import TransportClosed
from trio_lingma.backend.websocket import HandshakeFailed, WebSocketClient, connect

Handler = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]


class CountingStream(trio.abc.Stream):
    """A socket stream that counts ``send_all`` calls (one per write syscall batch)."""

    def __init__(self, inner: trio.SocketStream) -> None:
        self.inner = inner
        self.writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _server(nursery: trio.Nursery, handler: Handler) -> int:
    async def accept(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await handler(ws)
        except trio_websocket.ConnectionClosed:
            pass

    server = await nursery.start(trio_websocket.serve_websocket, accept, "127.0.0.1", 0, None)
    return int(server.port)


async def _client(port: int, *, max_message: int = 1 << 20) -> tuple[WebSocketClient, CountingStream]:
    stream = CountingStream(await trio.open_tcp_stream("127.0.0.1", port))
    return await connect(stream, "127.0.0.1", "/", max_message=max_message), stream


@pytest.fixture
async def echo_port(nursery: trio.Nursery) -> AsyncIterator[int]:
    async def echo(ws: trio_websocket.WebSocketConnection) -> None:
        while True:
            await ws.send_message(f"<{await ws.get_message()}>")

    yield await _server(nursery, echo)


async def test_send_many_writes_one_frame_per_text_in_one_write(echo_port: int) -> None:
    with trio.fail_after(5):
        client, stream = await _client(echo_port)
        writes = stream.writes
        await client.send_many(["a", "b", "c"])
        assert stream.writes == writes + 1
        echoed = ""
        while len(echoed) < 9:
            echoed += await client.receive()  # several messages may come in one read
        assert echoed == "<a><b><c>"
        await client.aclose()


async def test_pings_are_answered_and_closes_described(nursery: trio.Nursery) -> None:
    async def ping_then_close(ws: trio_websocket.WebSocketConnection) -> None:
        await ws.send_message("before")
        with trio.fail_after(2):
            await ws.ping(b"are you there")  # returns once our pong arrived
        await ws.send_message("after")
        await ws.aclose(code=4000, reason="bye")

    port = await _server(nursery, ping_then_close)
    with trio.fail_after(5):
        client, _ = await _client(port)
        received = ""
        with pytest.raises(TransportClosed, match=r"WebSocket code 4000\): bye"):
            while True:
                received += await client.receive()
        assert received == "beforeafter"
        with pytest.raises(TransportClosed):
            await client.send("late")
        await client.aclose()


async def test_a_message_over_the_limit_closes_with_1009(nursery: trio.Nursery) -> None:
    closed: list[int] = []
    seen = trio.Event()

    async def big(ws: trio_websocket.WebSocketConnection) -> None:
        await ws.send_message("x" * 5000)
        try:
            await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            closed.append(exc.reason.code)
            seen.set()

    port = await _server(nursery, big)
    with trio.fail_after(5):
        client, _ = await _client(port, max_message=1000)
        with pytest.raises(TransportClosed, match="1009"):
            await client.receive()
        await seen.wait()
        await client.aclose()
    assert closed == [1009]


async def test_a_refused_upgrade_is_a_handshake_failure(nursery: trio.Nursery) -> None:
    async def refuse(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(403)

    server = await nursery.start(trio_websocket.serve_websocket, refuse, "127.0.0.1", 0, None)
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        with pytest.raises(HandshakeFailed, match="403"):
            await connect(stream, "127.0.0.1", "/", max_message=1000)
        await stream.aclose()


async def test_a_peer_that_vanishes_ends_receive(nursery: trio.Nursery) -> None:
    async def vanish(ws: trio_websocket.WebSocketConnection) -> None:
        await ws._stream.aclose()  # no close frame: a crashed runtime

    port = await _server(nursery, vanish)
    with trio.fail_after(5):
        client, _ = await _client(port)
        with pytest.raises(TransportClosed):
            await client.receive()
        await client.aclose()


async def test_the_peers_close_frame_explains_a_write_it_cut_short(nursery: trio.Nursery) -> None:
    async def small_limit(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass

    serve = functools.partial(trio_websocket.serve_websocket, small_limit, "127.0.0.1", 0, None,
                              max_message_size=1 << 20)
    server = await nursery.start(serve)
    errors: list[str] = []

    async def read(client: WebSocketClient) -> None:
        try:
            await client.receive()
        except TransportClosed as exc:
            errors.append(str(exc))

    with trio.fail_after(10):
        client, _ = await _client(server.port)
        async with trio.open_nursery() as inner:
            inner.start_soon(read, client)
            with pytest.raises(TransportClosed):
                await client.send("x" * 3_000_000)  # the runtime closes with 1009 mid-way
        await client.aclose()
    # the reader says why (LingmaClient reports the reader's reason, not the writer's reset)
    assert len(errors) == 1 and "WebSocket code 1009" in errors[0] and "LINGMA_MAX_MESSAGE_BYTES" in errors[0]
