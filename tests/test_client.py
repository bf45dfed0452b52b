"""The Lingma client over the in-memory transport: correlation, routing, answers, closing."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from trio_lingma.backend.client import LingmaClient
from trio_lingma.backend.legacy import LegacyConnection
from trio_lingma.backend.transport import (
    MemoryTransport,
    TransportClosed,
    _closed,
    describe_close,
    is_message_refused,
    memory_transport_pair,
)
from trio_lingma.errors import MessageRefused, MessageTooLarge, UpstreamClosed, UpstreamFailed, UpstreamTimeout
from trio_lingma.protocol import jsonrpc
from trio_lingma.protocol.events import Finish, FinishReason, StreamError, TextDelta


class FakeServer:
    """The server end of the link, driven step by step by the test."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.peer = jsonrpc.Peer(first_id=100)
        self.inbox: list[jsonrpc.Received] = []

    async def next_message(self) -> jsonrpc.Received:
        while not self.inbox:
            self.inbox += self.peer.receive_data(await self.transport.receive())
        return self.inbox.pop(0)

    async def reply(self, request: Any, result: Any) -> None:
        await self.transport.send(self.peer.send_result(request.id, result))

    async def push(self, method: str, params: Any) -> int:
        id_, frame = self.peer.send_request(method, params)
        await self.transport.send(frame)
        return id_


@pytest.fixture
async def link(nursery: trio.Nursery) -> tuple[LingmaClient, FakeServer]:
    client_end, server_end = memory_transport_pair()
    client = LingmaClient(client_end, name="test")
    nursery.start_soon(_serve_quietly, client)
    return client, FakeServer(server_end)


async def _serve_quietly(client: LingmaClient) -> None:
    with pytest.raises(UpstreamClosed):
        await client.serve()


async def test_interleaved_calls_are_matched_by_id(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    results: dict[str, Any] = {}

    async def call(method: str) -> None:
        results[method] = await client.call(method, {"m": method})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for method in ("a", "b", "c"):
                nursery.start_soon(call, method)
            requests = [await server.next_message() for _ in range(3)]
            for request in reversed(requests):  # answer in reverse order
                await server.reply(request, f"result of {request.method}")
    assert results == {m: f"result of {m}" for m in "abc"}


async def test_server_requests_are_answered_at_once(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    with trio.fail_after(5):
        answer_id = await server.push("chat/answer", {"requestId": "nobody", "text": "x"})
        unknown_id = await server.push("workspace/somethingNew", {})
        ping_id = await server.push("ping", None)
        answers = {m.id: m for m in [await server.next_message() for _ in range(3)]}
    assert answers[answer_id] == jsonrpc.Response(id=answer_id, result=True, method="chat/answer")
    assert answers[unknown_id] == jsonrpc.Response(id=unknown_id, result=None,
                                                   method="workspace/somethingNew")
    assert answers[ping_id] == jsonrpc.Response(id=ping_id, result={"success": True}, method="ping")
    assert server.peer.pending == {}


async def test_pushes_are_routed_to_their_turn(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    with trio.fail_after(5), client.subscribe("r1") as one, client.subscribe("r2") as two:
        await server.push("chat/answer", {"requestId": "r2", "text": "for two"})
        await server.push("chat/answer", {"requestId": "r1", "text": "for one"})
        await server.push("session/update", {"_meta": {"ai-coding/request-id": "r1"}, "update": {}})
        assert (await one.receive()).params["text"] == "for one"
        assert (await one.receive()).method == "session/update"
        assert (await two.receive()).params["text"] == "for two"


async def test_error_response_raises_upstream_failed(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def answer_with_error() -> None:
        request = await server.next_message()
        await server.transport.send(server.peer.send_error(request.id, -32601, "unknown method: x"))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_with_error)
            with pytest.raises(UpstreamFailed, match="unknown method: x"):
                await client.call("x")


async def test_call_timeout(link: tuple[LingmaClient, FakeServer], autojump_clock: Any) -> None:
    client, _ = link
    with pytest.raises(UpstreamTimeout):
        await client.call("ping", timeout=5)


async def test_close_fails_pending_calls_and_turns(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def close_soon() -> None:
        await server.next_message()
        await server.transport.aclose()

    with trio.fail_after(5), client.subscribe("r1") as turn:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(UpstreamClosed):
                await client.call("chat/ask", {})
        with pytest.raises(trio.EndOfChannel):
            await turn.receive()
    assert client.closed
    with pytest.raises(UpstreamClosed):
        await client.call("ping")


async def test_closing_while_callers_wait_on_a_full_outbox_raises_upstream_closed(
        nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair(buffer=0)  # nobody reads: the writer blocks
    client = LingmaClient(client_end, name="test", outbox=1)
    nursery.start_soon(_serve_quietly, client)
    failures: list[BaseException] = []

    async def call(method: str) -> None:
        try:
            await client.call(method)
        except BaseException as exc:  # noqa: BLE001 - the test records exactly what escaped
            failures.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as callers:
            for method in ("in-writer", "in-outbox", "waiting-on-outbox"):
                callers.start_soon(call, method)
                await trio.testing.wait_all_tasks_blocked()
            await server_end.aclose()  # the runtime goes away
    assert [type(e) for e in failures] == [UpstreamClosed] * 3
    with pytest.raises(UpstreamClosed):
        await client.notify("ping")


async def _answer_ask(server: FakeServer) -> tuple[str, str]:
    ask = await server.next_message()
    assert isinstance(ask, jsonrpc.Request) and ask.method == "chat/ask"
    await server.reply(ask, {"requestId": ask.params["requestId"], "isSuccess": True})
    return ask.params["requestId"], ask.params["sessionId"]


async def test_legacy_turn_events(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def script() -> None:
        rid, sid = await _answer_ask(server)
        for text in ("pon", "", "g"):
            await server.push("chat/answer", {"requestId": rid, "sessionId": sid, "text": text})
        await server.push("chat/finish", {"requestId": rid, "sessionId": sid, "statusCode": 200,
                                          "reason": "success"})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script)
            async with LegacyConnection(client).open_turn(
                request_id="r1", session_id="s1", question="ping", model_key="k",
                is_reply=False, mode="chat", timeout=5,
            ) as turn:
                events = []
                while not turn.finished:
                    events += await turn.receive()
    assert events == [TextDelta(text="pon"), TextDelta(text="g"), Finish(reason=FinishReason.STOP)]


async def test_leaving_a_turn_early_sends_chat_stop(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    stops: list[Any] = []

    async def script() -> None:
        rid, sid = await _answer_ask(server)
        await server.push("chat/answer", {"requestId": rid, "sessionId": sid, "text": "partial"})
        while True:
            message = await server.next_message()
            if isinstance(message, jsonrpc.Request) and message.method == "chat/stop":
                stops.append(message.params)
                await server.reply(message, {})
                return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script)
            with trio.CancelScope() as scope:
                async with LegacyConnection(client).open_turn(
                    request_id="r9", session_id="s9", question="q", model_key="k",
                    is_reply=False, mode="chat", timeout=5,
                ) as turn:
                    assert await turn.receive() == [TextDelta(text="partial")]
                    scope.cancel()  # the HTTP client went away
                    await trio.sleep_forever()
    assert stops == [{"requestId": "r9", "sessionId": "s9"}]


async def test_failed_finish_becomes_stream_error(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def script() -> None:
        rid, sid = await _answer_ask(server)
        await server.push("chat/finish", {"requestId": rid, "sessionId": sid, "statusCode": 500,
                                          "reason": "error"})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script)
            async with LegacyConnection(client).open_turn(
                request_id="r1", session_id="s1", question="q", model_key="k",
                is_reply=False, mode="chat", timeout=5,
            ) as turn:
                (event,) = await turn.receive()
    assert isinstance(event, StreamError) and "status 500" in event.message


async def test_a_flood_of_pushes_is_back_pressured_never_dropped(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair(buffer=4)
    client = LingmaClient(client_end, name="test", outbox=8)
    nursery.start_soon(_serve_quietly, client)
    server = FakeServer(server_end)
    sent: list[int] = []

    async def flood() -> None:
        for n in range(200):
            sent.append(await server.push("chat/answer", {"requestId": "nobody", "text": str(n)}))

    with trio.fail_after(5):
        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        assert len(sent) < 40  # the server reads nothing: the client stopped reading too
        answered = {(await server.next_message()).id for _ in range(200)}
    assert answered == set(sent) and len(sent) == 200
    assert server.peer.pending == {}


async def test_probes_go_ahead_of_queued_answers(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair(buffer=1)
    client = LingmaClient(client_end, name="test", outbox=1000)
    nursery.start_soon(_serve_quietly, client)
    server = FakeServer(server_end)
    with trio.fail_after(5):
        for n in range(50):
            await server.push("chat/answer", {"requestId": "nobody", "text": str(n)})
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(client.call, "ping")
        await trio.testing.wait_all_tasks_blocked()
        methods = [getattr(await server.next_message(), "method", None) for _ in range(51)]
    assert methods.index("ping") < 5  # behind at most the batch already being written


async def test_inbound_traffic_is_a_sign_of_life(
    link: tuple[LingmaClient, FakeServer], autojump_clock: Any) -> None:
    client, server = link
    await trio.sleep(10)
    before = client.last_received
    await server.push("chat/answer", {"requestId": "nobody", "text": "x"})
    await trio.testing.wait_all_tasks_blocked()
    assert client.last_received == trio.current_time() > before


async def test_closing_while_answers_are_backlogged_fails_calls_cleanly(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair(buffer=2)
    client = LingmaClient(client_end, name="test", outbox=4)
    nursery.start_soon(_serve_quietly, client)
    server = FakeServer(server_end)

    async def flood() -> None:
        with pytest.raises(TransportClosed):
            for n in range(100):
                await server.push("chat/answer", {"requestId": "nobody", "text": str(n)})

    with trio.fail_after(5):
        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        async with trio.open_nursery() as inner:
            inner.start_soon(server.transport.aclose)
            with pytest.raises(UpstreamClosed):
                await client.call("ping")


async def test_a_legacy_question_over_the_message_limit_is_a_413_and_nothing_is_sent(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair()
    client = LingmaClient(client_end, name="small", max_message_bytes=4096)
    nursery.start_soon(_serve_quietly, client)
    connection = LegacyConnection(client)
    with pytest.raises(MessageTooLarge) as info:
        async with connection.open_turn(request_id="R", session_id="S", question="q" * 5000, model_key="",
                                        is_reply=False, mode="chat", timeout=5):
            pass  # pragma: no cover
    assert info.value.status == 413 and "4096" in info.value.message
    with pytest.raises(trio.WouldBlock):
        server_end._receive.receive_nowait()  # nothing reached the runtime
    with pytest.raises(MessageTooLarge):
        await client.notify("session/cancel", {"pad": "p" * 5000})


def test_a_websocket_close_is_told_in_plain_words() -> None:
    too_big = _closed(trio_websocket.ConnectionClosed(trio_websocket.CloseReason(1009, "message too big")))
    assert str(too_big) == ("connection closed (WebSocket code 1009, message too big): the runtime refused a "
                            "message over its size limit (see LINGMA_MAX_MESSAGE_BYTES): message too big")
    gone = str(_closed(trio_websocket.ConnectionClosed(trio_websocket.CloseReason(1006, None))))
    assert gone == "connection closed (WebSocket code 1006, abnormal closure)" and "CloseReason" not in gone


async def test_pushes_queued_together_come_out_as_one_batch(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def script() -> None:
        rid, sid = await _answer_ask(server)
        for text in ("a", "b", "c"):
            await server.push("chat/answer", {"requestId": rid, "sessionId": sid, "text": text})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script)
            async with LegacyConnection(client).open_turn(
                request_id="r1", session_id="s1", question="q", model_key="k",
                is_reply=False, mode="chat", timeout=5,
            ) as turn:
                await trio.testing.wait_all_tasks_blocked()
                assert await turn.receive() == [TextDelta(text=t) for t in "abc"]


class _RefusingTransport:
    """A runtime that drops the connection over a message too big for it (WebSocket 1009)."""

    def __init__(self) -> None:
        self.got_message = trio.Event()

    async def send(self, text: str) -> None:
        self.got_message.set()

    async def send_many(self, texts: list[str]) -> None:
        self.got_message.set()

    async def receive(self) -> str:
        await self.got_message.wait()
        raise TransportClosed(describe_close(1009, "message too big"))

    async def aclose(self) -> None:
        pass


async def test_a_call_waiting_when_the_runtime_refuses_a_message_gets_message_refused(nursery: trio.Nursery) -> None:
    client = LingmaClient(_RefusingTransport(), name="refusing")
    nursery.start_soon(_serve_quietly, client)
    with trio.fail_after(5), pytest.raises(MessageRefused, match="1009") as info:
        await client.call("chat/ask", {"questionText": "big"})
    assert isinstance(info.value, UpstreamClosed) and info.value.status == 502
    assert not is_message_refused(describe_close(1006, None))
