"""The ACP ``session/*`` dialect: the sans-IO turn, the client dialect against a scripted fake
server over the memory transport, then against the simulator over a real WebSocket."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import wrap_client_stream

from trio_lingma.backend.acp import AcpConnection, DialectMismatch
from trio_lingma.backend.acp import initialize as acp_initialize
from trio_lingma.backend.client import LingmaClient
from trio_lingma.backend.dialects import Connection, detect, handshake, make_dialect
from trio_lingma.backend.legacy import LegacyConnection
from trio_lingma.backend.legacy import initialize as legacy_initialize
from trio_lingma.backend.transport import MemoryTransport, WebSocketTransport, memory_transport_pair
from trio_lingma.errors import MessageTooLarge, UpstreamClosed
from trio_lingma.observability.tasks import task_tree
from trio_lingma.protocol import acp, jsonrpc
from trio_lingma.protocol.events import (
    ErrorKind,
    Event,
    Finish,
    FinishReason,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolCallResult,
    ToolCallStart,
    Usage,
)
from trio_lingma.settings import ConfigError
from trio_lingma.simulator import SimulatorConfig, SimulatorPorts, serve_simulator
from trio_lingma.simulator._acp import acp_steps
from trio_lingma.simulator._plan import Ask, Notify, Push, plan_turn

# -- pure: the turn ----------------------------------------------------------------------


def _update(update: dict[str, Any], rid: str = "R") -> dict[str, Any]:
    return {"_meta": {acp.META_REQUEST_ID: rid}, "sessionId": "S", "update": update}


def _chunk(kind: str, text: str, rid: str = "R") -> dict[str, Any]:
    return _update({"sessionUpdate": kind, "content": {"type": "text", "text": text}}, rid)


def _note(type_: str, data: dict[str, Any], rid: str = "R") -> dict[str, Any]:
    return _update({"sessionUpdate": "notification", "type": type_, "data": data}, rid)


def test_turn_translates_updates() -> None:
    turn = acp.AcpTurn("R", "S")
    assert turn.feed("session/update", _chunk("agent_thought_chunk", "hmm")) == [ThinkingDelta(text="hmm")]
    assert turn.feed("session/update", _chunk("agent_message_chunk", "Hel")) == [TextDelta(text="Hel")]
    assert turn.feed("session/update", _chunk("agent_message_chunk", "")) == []
    assert turn.feed("chat/process_step_callback", {"requestId": "R", "step": "step_end"}) == []
    usage = _note("context_usage", {"usedTokens": 123, "limitTokens": 131072})
    assert turn.feed("session/update", usage) == []  # the window's fill, not this turn's counts
    assert turn.context_usage == {"usedTokens": 123, "limitTokens": 131072}
    counts = _note("context_usage", {"usedTokens": 123, "inputTokens": 100, "outputTokens": 23})
    assert turn.feed("session/update", counts) == [Usage(input_tokens=100, output_tokens=23)]
    assert turn.feed("session/update", _note("chat_finish", {"reason": "success"})) == [Finish()]
    assert turn.finished
    assert turn.feed("session/update", _chunk("agent_message_chunk", "late")) == []
    assert turn.prompt_done({"stopReason": "end_turn"}) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"reason": "success"}, Finish(reason=FinishReason.STOP)),
        ({}, Finish(reason=FinishReason.STOP)),
        ({"reason": "cancelled"}, Finish(reason=FinishReason.CANCELLED)),
        ({"reason": "max_tokens"}, Finish(reason=FinishReason.LENGTH)),
        ({"reason": "success", "statusCode": 200}, Finish(reason=FinishReason.STOP)),
    ],
)
def test_chat_finish_ends(data: dict[str, Any], expected: Event) -> None:
    assert acp.finish_event(data) == expected


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"reason": "error"}, ErrorKind.UPSTREAM_ERROR),
        ({"reason": "error", "statusCode": 500}, ErrorKind.UPSTREAM_ERROR),
        ({"reason": "success", "statusCode": 503}, ErrorKind.UPSTREAM_ERROR),
        ({"reason": "timeout"}, ErrorKind.UPSTREAM_TIMEOUT),
        ({"statusCode": 408}, ErrorKind.UPSTREAM_TIMEOUT),
    ],
)
def test_chat_finish_errors(data: dict[str, Any], kind: ErrorKind) -> None:
    event = acp.finish_event(data)
    assert isinstance(event, StreamError) and event.kind is kind
    assert event.detail == data


def test_prompt_response_with_a_stop_reason_ends_a_turn_without_chat_finish() -> None:
    turn = acp.AcpTurn("R")
    assert turn.prompt_done({"stopReason": "cancelled"}) == [Finish(reason=FinishReason.CANCELLED)]
    assert turn.finished
    assert acp.AcpTurn("R").prompt_done({"stopReason": "something new"}) == [Finish()]
    refused = acp.AcpTurn("R").prompt_done({"stopReason": "refusal"})
    assert isinstance(refused[0], StreamError)
    failed = acp.AcpTurn("R").prompt_failed("boom")
    assert failed == [StreamError(kind=ErrorKind.UPSTREAM_ERROR, message="boom")]


@pytest.mark.parametrize("result", [None, {}, {"stopReason": ""}, {"stopReason": None}, [], "ok"])
def test_an_empty_prompt_result_is_an_acknowledgement(result: Any) -> None:
    # OC, live: session/prompt "returned successfully; result was undefined" while the answer
    # still streamed; chat_finish ended the turn (with an empty fullAnswer).
    turn = acp.AcpTurn("R")
    assert turn.prompt_done(result) == []
    assert turn.acknowledged and not turn.finished
    assert turn.feed("session/update", _chunk("agent_message_chunk", "IPC")) == [TextDelta(text="IPC")]
    finish = _note("chat_finish", {"reason": "success", "fullAnswer": ""})
    assert turn.feed("session/update", finish) == [Finish()]


@pytest.mark.parametrize("method", ["snapshot/syncAll", "session/title/update", "chat/process_step_callback"])
def test_side_pushes_of_a_real_turn_are_ignored(method: str) -> None:
    turn = acp.AcpTurn("R")
    assert turn.feed(method, {"requestId": "R", "sessionId": "S", "step": "step_end"}) == []
    commands = _update({"sessionUpdate": "available_commands_update", "availableCommands": []})
    assert turn.feed("session/update", commands) == []
    assert not turn.finished


def test_content_shapes_are_tolerated() -> None:
    turn = acp.AcpTurn("R")
    as_list = _update({"sessionUpdate": "agent_message_chunk", "content": [{"text": "a"}, {"text": "b"}]})
    assert turn.feed("session/update", as_list) == [TextDelta(text="ab")]
    assert turn.feed("session/update", _update({"sessionUpdate": "agent_message_chunk", "content": "c"})) == [
        TextDelta(text="c")
    ]
    assert turn.feed("session/update", {"update": "nonsense"}) == []
    assert turn.feed("session/update", _update({"sessionUpdate": "tool_call", "title": "x"})) == []


def test_builders() -> None:
    prompt = acp.prompt_params(session_id="S", request_id="R", question="hi", model_key="kmodel", mode="agent")
    assert prompt["prompt"] == [{"type": "text", "text": "hi"}]
    assert prompt["_meta"][acp.META_REQUEST_ID] == "R"
    assert prompt["_meta"][acp.META_MODE] == "agent"
    assert prompt["_meta"][acp.META_MODEL] == "kmodel"
    assert acp.update_request_id(prompt) == "R"
    assert acp.initialize_params(client_version="1", now_ms=5)["protocolVersion"] == 2
    assert acp.initialize_params(client_version="1", now_ms=5, version=1)["protocolVersion"] == 1
    assert acp.new_session_params("/tmp", now_ms=5)["mcpServers"] == []
    assert acp.set_model_params("S", "k", now_ms=1)["modelId"] == "k"
    assert acp.parse_session_id({"sessionId": "a"}) == "a"
    assert acp.parse_session_id({"id": "b"}) == "b"
    assert acp.parse_session_id({"sessionId": ""}) is None
    assert acp.delete_session_params("S", legacy_key=True) == {"id": "S"}


def test_simulator_translates_the_legacy_plan() -> None:
    ask = Ask(request_id="R", session_id="S", question_text="[sim think] hi")
    plan = plan_turn(ask)
    steps = acp_steps(plan)
    notes = [s.params["update"] for s in steps if isinstance(s, Notify) and s.method == "session/update"]
    kinds = [u["sessionUpdate"] if u["sessionUpdate"] != "notification" else u["type"] for u in notes]
    assert kinds.index("agent_thought_chunk") < kinds.index("agent_message_chunk")
    assert kinds[-2:] == ["context_usage", "chat_finish"]
    text = "".join(u["content"]["text"] for u in notes if u["sessionUpdate"] == "agent_message_chunk")
    assert text == plan.full_answer
    assert not any(isinstance(s, Push) and s.method in ("chat/answer", "chat/finish") for s in steps)
    tools = acp_steps(plan_turn(Ask(request_id="R", session_id="S", question_text="[sim tools]")))
    assert not any(isinstance(s, Push) and s.method.startswith("tool/") for s in tools)
    updates = [s.params["update"] for s in tools if isinstance(s, Notify) and s.method == "session/update"]
    tool_kinds = [(u["sessionUpdate"], u.get("status")) for u in updates if "toolCallId" in u]
    assert tool_kinds == [("tool_call", "pending"), ("tool_call_update", "in_progress"),
                          ("tool_call_update", "completed")]


def test_registry() -> None:
    assert make_dialect("acp") is acp_initialize
    assert make_dialect("legacy") is legacy_initialize
    assert make_dialect("auto") is detect
    with pytest.raises(ConfigError, match="LINGMA_DIALECT"):
        make_dialect("cosy")


# -- the client dialect against a scripted server ------------------------------------------


class FakeServer:
    """The server end of the memory link, driven step by step by the test."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.peer = jsonrpc.Peer(first_id=100)
        self.inbox: list[jsonrpc.Received] = []

    async def next_message(self) -> Any:
        while not self.inbox:
            self.inbox += self.peer.receive_data(await self.transport.receive())
        return self.inbox.pop(0)

    async def expect(self, method: str) -> Any:
        message = await self.next_message()
        assert getattr(message, "method", None) == method, message
        return message

    async def reply(self, request: Any, result: Any) -> None:
        await self.transport.send(self.peer.send_result(request.id, result))

    async def error(self, request: Any, code: int, message: str) -> None:
        await self.transport.send(self.peer.send_error(request.id, code, message))

    async def notify(self, method: str, params: Any) -> None:
        await self.transport.send(self.peer.send_notification(method, params))

    async def push(self, method: str, params: Any) -> int:
        id_, frame = self.peer.send_request(method, params)
        await self.transport.send(frame)
        return id_

    async def handshake(self, *, versions: tuple[int, ...] = (2,)) -> None:
        """Answer the ACP handshake: initialize (refusing versions but the last of
        ``versions``, as a runtime that only knows that one), the probe session, auth, models."""
        for version in versions[:-1]:
            init = await self.expect("initialize")
            assert init.params["protocolVersion"] == version
            await self.error(init, -32602, f"unsupported protocolVersion {version}")
        init = await self.expect("initialize")
        assert init.params["protocolVersion"] == versions[-1]
        await self.reply(init, {"protocolVersion": versions[-1], "serverInfo": {"name": "lingma", "version": "0.7.1"}})
        await self.reply(await self.expect("session/new"), {"sessionId": "probe"})
        delete = await self.expect("chat/deleteSessionById")
        assert delete.params == {"sessionId": "probe"}
        await self.reply(delete, None)
        auth = await self.expect("auth/status")
        assert auth.params == {}  # a Go runtime refuses any other shape (OC)
        await self.reply(auth, {"status": 2})
        models = await self.expect("config/queryModels")
        assert models.params == {}
        await self.reply(models, {"chat": [{"key": "kmodel", "displayName": "Kimi"}]})


@pytest.fixture
async def link(nursery: trio.Nursery) -> tuple[LingmaClient, FakeServer]:
    client_end, server_end = memory_transport_pair()
    client = LingmaClient(client_end, name="test")
    nursery.start_soon(_serve_quietly, client)
    return client, FakeServer(server_end)


async def _serve_quietly(client: LingmaClient) -> None:
    with pytest.raises(UpstreamClosed):
        await client.serve()


async def _handshaken(link: tuple[LingmaClient, FakeServer], versions: tuple[int, ...] = (2,)) -> Connection:
    client, server = link
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(server.handshake, versions=versions))
        connection, info = await handshake(acp_initialize, client, "/tmp", timeout=5)
    assert info.logged_in and info.models == (("kmodel", "Kimi", False),)
    assert isinstance(connection, AcpConnection) and connection.client is client
    return connection


def _turn_kw(request_id: str, session_id: str = "gateway-uuid", **kw: Any) -> dict[str, Any]:
    defaults = dict(request_id=request_id, session_id=session_id, question="hi", model_key="kmodel",
                    is_reply=False, mode="chat", timeout=5)
    return {**defaults, **kw}


TMP_RESOLVED = str(Path("/tmp").resolve())


async def _open_session(server: FakeServer, session_id: str) -> Any:
    """Answer session/new and session/set_model; return the session/prompt request."""
    new = await server.expect("session/new")
    assert new.params["mcpServers"] == [] and new.params["cwd"] == TMP_RESOLVED
    await server.reply(new, {"sessionId": session_id})
    set_model = await server.expect("session/set_model")
    assert set_model.params["sessionId"] == session_id and set_model.params["modelId"] == "kmodel"
    await server.reply(set_model, None)
    return await server.expect("session/prompt")


async def _drain(turn: Any) -> list[Event]:
    events: list[Event] = []
    while not turn.finished:
        events += await turn.receive()
    return events


async def _one_turn(link: tuple[LingmaClient, FakeServer], serve: Callable[[], Awaitable[None]]) -> list[Event]:
    """Handshake, then the events of turn "r1" while ``serve`` plays the runtime's side."""
    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            async with dialect.open_turn(**_turn_kw("r1")) as turn:
                return await _drain(turn)


async def test_two_interleaved_turns_and_a_stray_request(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    results: dict[str, tuple[str | None, list[Event]]] = {}

    async def run(rid: str) -> None:
        async with dialect.open_turn(**_turn_kw(rid)) as turn:
            results[rid] = (turn.session_id, await _drain(turn))

    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "r1")
            prompt1 = await _open_session(server, "S1")
            await trio.testing.wait_all_tasks_blocked()
            # the prompt task runs in the connection's nursery, named, beside the writer
            readers = _tasks_named(task_tree(), "_serve_quietly")
            assert sorted(c["name"] for r in readers for c in r["children"]) == ["test session/prompt r1", "test writer"]
            nursery.start_soon(run, "r2")
            prompt2 = await _open_session(server, "S2")
            assert prompt1.params["_meta"][acp.META_REQUEST_ID] == "r1"
            assert prompt2.params["sessionId"] == "S2"
            await server.notify("session/update", _chunk("agent_message_chunk", "two-a", "r2"))
            await server.notify("session/update", _chunk("agent_message_chunk", "one-a", "r1"))
            stray = await server.push("workspace/configuration", {"items": [{"section": "x"}]})
            answer = await server.next_message()
            assert answer == jsonrpc.Response(id=stray, result=[None], method="workspace/configuration")
            await server.notify("session/update", _chunk("agent_message_chunk", "one-b", "r1"))
            await server.notify("session/update", _note("chat_finish", {"reason": "success"}, "r1"))
            await server.reply(prompt1, {"stopReason": "end_turn"})
            await server.notify("session/update", _note("chat_finish", {"reason": "error"}, "r2"))
            await server.reply(prompt2, {"stopReason": "end_turn"})
    assert results["r1"] == ("S1", [TextDelta(text="one-a"), TextDelta(text="one-b"), Finish()])
    session, events = results["r2"]
    assert session == "S2" and events[0] == TextDelta(text="two-a")
    assert isinstance(events[1], StreamError) and len(events) == 2


async def test_prompt_response_alone_ends_the_turn_after_queued_updates(
    link: tuple[LingmaClient, FakeServer],
) -> None:
    client, server = link
    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_serve_one_turn_without_finish, server)
            async with dialect.open_turn(**_turn_kw("r1")) as turn:
                await trio.testing.wait_all_tasks_blocked()
                first = await turn.receive()  # everything queued comes as one batch
                events = first + await _drain(turn)
    assert first[:2] == [TextDelta(text="a"), TextDelta(text="b")]
    assert events == [TextDelta(text="a"), TextDelta(text="b"), Finish()]


async def test_initialize_falls_back_to_protocol_version_1(link: tuple[LingmaClient, FakeServer]) -> None:
    with trio.fail_after(5):
        await _handshaken(link, versions=(2, 1))


async def test_an_immediate_empty_prompt_result_does_not_end_the_turn(
    link: tuple[LingmaClient, FakeServer],
) -> None:
    """The order OC saw live: an empty result first, step callbacks before the answer, side
    pushes, chunks, context_usage, then chat_finish with an empty fullAnswer."""
    client, server = link

    async def serve() -> None:
        prompt = await _open_session(server, "S1")
        await server.reply(prompt, None)
        ids = {"requestId": "r1", "sessionId": "S1"}
        await server.notify("chat/process_step_callback", {**ids, "step": "step_start", "status": "doing"})
        await server.notify("chat/process_step_callback", {**ids, "step": "step_end", "status": "done"})
        await server.push("snapshot/syncAll", {**ids})
        await server.notify("session/title/update", {**ids, "sessionTitle": "hi"})
        await server.notify("session/update", _update({"sessionUpdate": "available_commands_update"}, "r1"))
        await server.notify("session/update", _chunk("agent_message_chunk", "IPC", "r1"))
        await server.notify("session/update", _chunk("agent_message_chunk", "_OK", "r1"))
        await server.notify("session/update", _note("context_usage", {"usedTokens": 9, "limitTokens": 99}, "r1"))
        await server.notify("session/update", _note("chat_finish", {"reason": "success", "fullAnswer": ""}, "r1"))

    events = await _one_turn(link, serve)
    assert events == [TextDelta(text="IPC"), TextDelta(text="_OK"), Finish()]


async def test_an_acknowledged_turn_that_never_finishes_stays_open(
    link: tuple[LingmaClient, FakeServer], autojump_clock: trio.testing.MockClock,
) -> None:
    """Nothing ends it but chat_finish: the request's own deadlines bound the wait."""
    client, server = link

    async def serve() -> None:
        await server.reply(await _open_session(server, "S1"), {})
        await server.notify("session/update", _chunk("agent_message_chunk", "a", "r1"))
        await server.expect("session/cancel")
        await server.reply(await server.expect("chat/stop"), {})

    dialect = await _handshaken(link)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        async with dialect.open_turn(**_turn_kw("r1")) as turn:
            assert await turn.receive() == [TextDelta(text="a")]
            with trio.move_on_after(3600) as waited:
                await turn.receive()
            assert waited.cancelled_caught and not turn.finished


def _tasks_named(node: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    here = [node] if node["name"].endswith(suffix) else []
    return here + [found for child in node["children"] for found in _tasks_named(child, suffix)]


async def _serve_one_turn_without_finish(server: FakeServer) -> None:
    prompt = await _open_session(server, "S1")
    await server.notify("session/update", _chunk("agent_message_chunk", "a", "r1"))
    await server.notify("session/update", _chunk("agent_message_chunk", "b", "r1"))
    await server.reply(prompt, {"stopReason": "end_turn"})


async def test_reused_session_skips_new_and_set_model(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def serve_two() -> None:
        prompt = await _open_session(server, "S1")
        await server.reply(prompt, {"stopReason": "end_turn"})
        prompt = await server.expect("session/prompt")  # no session/new, no set_model
        assert prompt.params["sessionId"] == "S1"
        await server.reply(prompt, {"stopReason": "end_turn"})
        prompt = await server.expect("session/set_model")  # the model changed
        assert prompt.params["modelId"] == "other"
        await server.error(prompt, -32602, "no such model")

    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_two)
            async with dialect.open_turn(**_turn_kw("r1")) as turn:
                assert await _drain(turn) == [Finish()]
            async with dialect.open_turn(**_turn_kw("r2", session_id="S1", is_reply=True)) as turn:
                assert turn.session_id == "S1"
                assert await _drain(turn) == [Finish()]
            with pytest.raises(Exception, match="no such model"):
                async with dialect.open_turn(**_turn_kw("r3", session_id="S1", model_key="other")):
                    pass  # pragma: no cover


async def test_missing_session_new_is_a_dialect_mismatch(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def vscode_runtime() -> None:
        await server.reply(await server.expect("initialize"), {})
        await server.error(await server.expect("session/new"), -32601, "unknown method: session/new")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(vscode_runtime)
            with pytest.raises(DialectMismatch, match="LINGMA_DIALECT=legacy") as info:
                await handshake(acp_initialize, client, "/tmp", timeout=5)
    assert "session/new" in info.value.message


async def test_missing_session_new_at_turn_time(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _refuse(server, "session/new", -32601))
            with pytest.raises(DialectMismatch, match="LINGMA_DIALECT"):
                async with dialect.open_turn(**_turn_kw("r1")):
                    pass  # pragma: no cover


async def _refuse(server: FakeServer, method: str, code: int) -> None:
    await server.error(await server.expect(method), code, f"unknown method: {method}")


async def test_failed_set_model_deletes_the_new_session(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def serve() -> None:
        await server.reply(await server.expect("session/new"), {"id": "S9"})
        await server.error(await server.expect("session/set_model"), -32603, "boom")
        delete = await server.expect("chat/deleteSessionById")
        assert delete.params == {"sessionId": "S9"}
        await server.error(delete, -32602, "want id")
        retry = await server.expect("chat/deleteSessionById")
        assert retry.params == {"id": "S9"}
        await server.reply(retry, None)

    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            with pytest.raises(Exception, match="boom"):
                async with dialect.open_turn(**_turn_kw("r1")):
                    pass  # pragma: no cover


async def test_leaving_early_cancels_upstream(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link
    seen: list[Any] = []

    async def serve() -> None:
        prompt = await _open_session(server, "S1")
        await server.notify("session/update", _chunk("agent_message_chunk", "a", "r1"))
        cancel = await server.expect("session/cancel")
        stop = await server.expect("chat/stop")
        seen.extend([cancel, stop])
        await server.error(stop, -32601, "unknown method: chat/stop")  # tolerated
        await server.reply(prompt, {"stopReason": "cancelled"})  # late: nobody waits

    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            with trio.CancelScope() as scope:
                async with dialect.open_turn(**_turn_kw("r1")) as turn:
                    assert await turn.receive() == [TextDelta(text="a")]
                    scope.cancel()  # e.g. the HTTP client went away
                    await trio.sleep_forever()
    cancel, stop = seen
    assert isinstance(cancel, jsonrpc.Notification)
    assert cancel.params == {"sessionId": "S1", "_meta": {acp.META_REQUEST_ID: "r1"}}
    assert stop.params == {"requestId": "r1", "sessionId": "S1"}


async def test_connection_lost_mid_turn(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def serve() -> None:
        await _open_session(server, "S1")
        await server.notify("session/update", _chunk("agent_message_chunk", "a", "r1"))
        await server.transport.aclose()

    with trio.fail_after(5):
        dialect = await _handshaken(link)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            async with dialect.open_turn(**_turn_kw("r1")) as turn:
                assert await turn.receive() == [TextDelta(text="a")]
                with pytest.raises(UpstreamClosed):
                    await turn.receive()


async def test_prompt_error_response_is_a_stream_error(link: tuple[LingmaClient, FakeServer]) -> None:
    client, server = link

    async def serve() -> None:
        prompt = await _open_session(server, "S1")
        await server.error(prompt, -32603, "quota exceeded")

    events = await _one_turn(link, serve)
    assert len(events) == 1 and isinstance(events[0], StreamError)
    assert "quota exceeded" in events[0].message


async def test_a_prompt_over_the_message_limit_is_refused_before_it_is_sent(nursery: trio.Nursery) -> None:
    client_end, server_end = memory_transport_pair()
    client = LingmaClient(client_end, name="small", max_message_bytes=4096)
    nursery.start_soon(_serve_quietly, client)
    server = FakeServer(server_end)

    async def serve() -> None:
        new = await server.expect("session/new")
        await server.reply(new, {"sessionId": "S1"})
        await server.reply(await server.expect("session/set_model"), None)
        delete = await server.expect("chat/deleteSessionById")  # the prompt never comes
        assert delete.params == {"sessionId": "S1"}
        await server.reply(delete, None)
        await server.reply(await server.expect("ping"), {"success": True})

    with trio.fail_after(5):
        dialect = await _handshaken((client, server))
        async with trio.open_nursery() as inner:
            inner.start_soon(serve)
            with pytest.raises(MessageTooLarge, match="over the limit of 4096 bytes") as info:
                async with dialect.open_turn(**_turn_kw("r1", question="x" * 5000)):
                    pass  # pragma: no cover
            await client.ping(timeout=5)  # the connection is fine
    assert info.value.status == 413 and "LINGMA_MAX_MESSAGE_BYTES" in info.value.message


# -- against the simulator over a real WebSocket ----------------------------------------------


@pytest.fixture
async def acp_sim(nursery: trio.Nursery, tmp_path: Path) -> SimulatorPorts:
    ports: SimulatorPorts = await nursery.start(serve_simulator, SimulatorConfig(work_dir=tmp_path, dialect="acp"))
    return ports


async def _serve_client(client: LingmaClient, *, task_status: trio.TaskStatus[None]) -> None:
    try:
        await client.serve(task_status=task_status)
    except UpstreamClosed:
        pass


@asynccontextmanager
async def connect(ports: SimulatorPorts) -> AsyncIterator[LingmaClient]:
    """A LingmaClient over a WebSocket whose TCP stream we own (see tests/test_simulator.py)."""
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", ports.websocket)
        try:
            ws = await wrap_client_stream(nursery, stream, "127.0.0.1", "/")
            try:
                client = LingmaClient(WebSocketTransport(ws), name="sim")
                await nursery.start(functools.partial(_serve_client, client), name="sim reader")
                yield client
            finally:
                await ws.aclose()
        finally:
            await stream.aclose()
            nursery.cancel_scope.cancel()


async def _ask(dialect: Connection, question: str, **kw: Any) -> tuple[str | None, list[Event]]:
    async with dialect.open_turn(**_turn_kw(kw.pop("rid", "req-1"), question=question, **kw)) as turn:
        return turn.session_id, await _drain(turn)


async def _stats(client: LingmaClient) -> dict[str, Any]:
    stats: dict[str, Any] = await client.call("sim/stats")
    return stats


async def test_simulator_acp_turns(acp_sim: SimulatorPorts, tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with connect(acp_sim) as client:
            dialect, info = await handshake(acp_initialize, client, str(tmp_path), timeout=5)
            assert info.logged_in and ("dashscope_qwen3_coder", "qwen3-coder", False) in info.models
            session, events = await _ask(dialect, "hello", model_key="dashscope_qwen3_coder")
            texts = "".join(e.text for e in events if isinstance(e, TextDelta))
            assert texts == "Echo: hello" and events[-1] == Finish()
            assert not any(isinstance(e, Usage) for e in events)  # usedTokens only: the window's fill
            assert session is not None and session != "gateway-uuid"
            _, thought = await _ask(dialect, "[sim think] why", rid="req-2", session_id=session,
                                    model_key="dashscope_qwen3_coder", is_reply=True)
            assert any(isinstance(e, ThinkingDelta) for e in thought)
            _, stray = await _ask(dialect, "[sim stray] x", rid="req-3")
            assert stray[-1] == Finish()
            _, failed = await _ask(dialect, "[sim error status=503 after=1] x", rid="req-4")
            assert isinstance(failed[-1], StreamError) and "503" in failed[-1].message
            _, tools = await _ask(dialect, "[sim tools calls=2 status=ERROR] x", rid="req-5", mode="agent")
            starts = [e for e in tools if isinstance(e, ToolCallStart)]
            assert [e.name for e in starts] == ["read_file", "read_file"]
            results = [e for e in tools if isinstance(e, ToolCallResult)]
            assert [(r.is_error, r.content) for r in results] == [(True, "simulated tool failure")] * 2
            assert "".join(e.text for e in tools if isinstance(e, TextDelta)) == "Echo: x"
            await dialect.delete_session(session)
            stats = await _stats(client)
    assert [a["requestId"] for a in stats["asks"]] == ["req-1", "req-2", "req-3", "req-4", "req-5"]
    assert stats["asks"][1]["sessionId"] == session and stats["asks"][1]["isReply"]
    assert stats["asks"][0]["model"] == "dashscope_qwen3_coder"
    assert session in stats["deletedSessions"]
    assert stats["unansweredPushes"] == 0


async def test_simulator_acp_cancel(acp_sim: SimulatorPorts, tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with connect(acp_sim) as client:
            dialect, _ = await handshake(acp_initialize, client, str(tmp_path), timeout=5)
            async with dialect.open_turn(**_turn_kw("hung", question="[sim hang after=1] x")) as turn:
                assert await turn.receive() == [TextDelta(text="Echo: x")]
            # the cancelled turn still works afterwards: the connection is healthy
            _, events = await _ask(dialect, "after", rid="next")
            assert events[-1] == Finish()
            stats = await _stats(client)
    assert "hung" in stats["stops"]


async def test_simulator_vscode_runtime_is_reported(nursery: trio.Nursery, tmp_path: Path) -> None:
    config = SimulatorConfig(work_dir=tmp_path, dialect="acp-vscode")
    ports: SimulatorPorts = await nursery.start(serve_simulator, config)
    with trio.fail_after(10):
        async with connect(ports) as client:
            with pytest.raises(DialectMismatch, match="LINGMA_DIALECT"):
                await handshake(acp_initialize, client, str(tmp_path), timeout=5)
            connection, _ = await handshake(detect, client, str(tmp_path), timeout=5)
            assert isinstance(connection, LegacyConnection)


@pytest.mark.parametrize("sim_dialect", ["legacy", "acp"])
async def test_auto_detects_the_dialect(nursery: trio.Nursery, tmp_path: Path, sim_dialect: str) -> None:
    config = SimulatorConfig(work_dir=tmp_path, dialect=sim_dialect)
    ports: SimulatorPorts = await nursery.start(serve_simulator, config)
    with trio.fail_after(10):
        async with connect(ports) as client:
            connection, info = await handshake(detect, client, str(tmp_path), timeout=5)
            assert info.models and info.logged_in
            assert connection.name == sim_dialect and connection.client is client
            _, events = await _ask(connection, "hello")
            await connection.ping(timeout=5)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Echo: hello"
    assert events[-1] == Finish()
