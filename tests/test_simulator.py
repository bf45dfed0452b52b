"""Tests of the Lingma simulator: pure directive parsing and turn planning first, then the
real server in-process over WebSockets, then the command line as a subprocess."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from trio_lingma.protocol.jsonrpc import (
    ErrorResponse,
    Notification,
    Peer,
    Received,
    Request,
    Response,
)
from trio_lingma.simulator import (
    Ask,
    DirectiveError,
    Scenario,
    SimulatorConfig,
    SimulatorPorts,
    TurnPlan,
    answer_pieces,
    parse_question,
    plan_turn,
    serve_simulator,
)
from trio_lingma.simulator._plan import MAX_PIECES, InvokeTools, Push, ToolCall, tool_result_sync

# -- pure: directives ---------------------------------------------------------------------


def test_no_directive_is_echo() -> None:
    directive = parse_question("  hello there \n")
    assert directive.scenario == Scenario()
    assert directive.text == "hello there"


def test_last_directive_wins_and_all_are_removed() -> None:
    text = "User: [sim think] first\nAssistant: ok\nUser: [sim tools calls=2 status=ERROR] read it"
    directive = parse_question(text)
    assert directive.scenario == Scenario(name="tools", calls=2, tool_error=True)
    assert "[sim" not in directive.text
    assert directive.text.endswith("User:  read it")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[sim slow]", Scenario(name="slow", delay=0.2)),
        ("[sim slow delay=0.5] x", Scenario(name="slow", delay=0.5)),
        ("[sim long chunks=12]", Scenario(name="long", chunks=12)),
        ("[sim error status=503 after=2]", Scenario(name="error", status_code=503, after=2)),
        ("[sim crash after=3]", Scenario(name="crash", after=3)),
        ("[sim hang]", Scenario(name="hang")),
        ("[sim echo delay=0.1]", Scenario(name="echo", delay=0.1)),
        ("[sim unanswered]", Scenario(name="unanswered")),
    ],
)
def test_directive_parameters(text: str, expected: Scenario) -> None:
    assert parse_question(text).scenario == expected


@pytest.mark.parametrize(
    "text",
    ["[sim nosuch]", "[sim long chunks=many]", "[sim echo calls=2]", "[sim error status=42]"],
)
def test_bad_directive_is_an_error(text: str) -> None:
    with pytest.raises(DirectiveError):
        parse_question(text)


@given(st.text(max_size=200))
def test_answer_pieces_reassemble(text: str) -> None:
    pieces = answer_pieces(text)
    assert "".join(pieces) == text
    assert pieces[1] == ""
    assert all(len(p) <= 8 for p in pieces)


def test_a_long_answer_is_sent_in_at_most_max_pieces() -> None:
    text = "x" * 100_000
    pieces = answer_pieces(text)
    assert "".join(pieces) == text and len(pieces) <= MAX_PIECES + 1 and pieces[1] == ""


# -- pure: turn planning ------------------------------------------------------------------


def _ask(question: str, **kw: Any) -> Ask:
    return Ask(request_id="r1", session_id="s1", question_text=question, **kw)


def _methods(question: str, **kw: Any) -> list[str]:
    steps = plan_turn(_ask(question, **kw)).steps
    return [s.method if isinstance(s, Push) else type(s).__name__ for s in steps]


def _plan_pushes(plan: TurnPlan, method: str) -> list[dict[str, Any]]:
    return [s.params for s in plan.steps if isinstance(s, Push) and s.method == method]


def test_plan_echo_order_and_full_answer() -> None:
    plan = plan_turn(_ask("hello world"))
    methods = [s.method for s in plan.steps if isinstance(s, Push)]
    assert methods[:2] == ["chat/process_step_callback", "session/title/update"]
    assert methods[-2:] == ["chat/process_step_callback", "chat/finish"]
    answers = [p["text"] for p in _plan_pushes(plan, "chat/answer")]
    assert "".join(answers) == plan.full_answer == "Echo: hello world"
    assert "" in answers
    finish = plan.steps[-1]
    assert isinstance(finish, Push)
    assert finish.params == {
        "requestId": "r1",
        "sessionId": "s1",
        "reason": "success",
        "statusCode": 200,
        "fullAnswer": "Echo: hello world",
        "extra": None,
    }


def test_plan_think_and_reasoning_model() -> None:
    think = _methods("[sim think] q")
    assert think.index("chat/think") < think.index("chat/answer")
    assert _methods("q", reasoning_model=True).count("chat/think") == think.count("chat/think")
    assert "chat/think" not in _methods("q")


def test_plan_tools_sequence() -> None:
    plan = plan_turn(_ask("[sim tools calls=2] go"))
    kinds = [s.method if isinstance(s, Push) else type(s).__name__ for s in plan.steps]
    assert kinds[2:8] == ["chat/answer", "chat/answer"] + ["tool/call/sync"] * 4
    assert kinds.index("InvokeTools") < kinds.index("chat/finish")
    last = plan.steps[-1]
    assert isinstance(last, Push) and last.params["toolCallStatus"] == "REQUEST_FINISHED"
    invoke = next(s for s in plan.steps if isinstance(s, InvokeTools))
    assert [c.tool_call_id for c in invoke.calls] == ["sim-r1-0", "sim-r1-1"]
    assert plan.full_answer.startswith("```toolCall::read_file::sim-r1-0::INIT\n```")


def test_tool_result_sync_statuses() -> None:
    plan = plan_turn(_ask("[sim tools]"))
    call = ToolCall(tool_call_id="t", name="read_file", parameters={"file_path": "/p"})
    assert tool_result_sync(plan, call, None).params["toolCallStatus"] == "ERROR"
    failed = tool_result_sync(plan, call, {"success": False, "errorMessage": "nope"})
    assert failed.params["errorMsg"] == "nope"
    ok = tool_result_sync(plan, call, {"success": True, "result": {"content": "x"}})
    assert ok.params["toolCallStatus"] == "FINISHED"
    assert ok.params["results"] == [{"content": '{"content": "x"}'}]


def test_plan_error_long_unanswered_and_bad_directive() -> None:
    error = plan_turn(_ask("[sim error status=503 after=1] hi"))
    assert error.full_answer == "Echo: hi"[:8]
    assert _plan_pushes(error, "chat/finish")[0]["statusCode"] == 503
    assert plan_turn(_ask("[sim long chunks=3]")).full_answer == "chunk 0 chunk 1 chunk 2 "
    assert plan_turn(_ask("[sim unanswered]")).withhold_until_acked
    bad = plan_turn(_ask("[sim bogus]"))
    assert _plan_pushes(bad, "chat/finish")[0]["statusCode"] == 400


# -- in-process server ----------------------------------------------------------------------


class Client:
    """A bare test client over the shared Peer core, reading one message at a time."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.peer = Peer()
        self.backlog: deque[Received] = deque()

    async def next(self) -> Received:
        while not self.backlog:
            self.backlog.extend(self.peer.receive_data(await self.ws.get_message()))
        return self.backlog.popleft()

    async def request(self, method: str, params: Any = None) -> Response | ErrorResponse:
        id_, frame = self.peer.send_request(method, params)
        await self.ws.send_message(frame)
        skipped: list[Received] = []
        while True:
            msg = await self.next()
            if isinstance(msg, (Response, ErrorResponse)) and msg.id == id_:
                self.backlog.extendleft(reversed(skipped))
                return msg
            skipped.append(msg)

    async def call(self, method: str, params: Any = None) -> Any:
        response = await self.request(method, params)
        assert isinstance(response, Response), response
        return response.result

    async def ack(self, push: Request, result: Any = None) -> None:
        await self.ws.send_message(self.peer.send_result(push.id, result))

    async def collect(
        self, done: Callable[[Received], bool], *, on_push: Callable[[Request], Any] | None = None
    ) -> list[Received]:
        """Read (acking every push) until ``done`` says the last message ends the turn."""
        out: list[Received] = []
        while True:
            msg = await self.next()
            out.append(msg)
            if isinstance(msg, Request):
                await self.ack(msg)
                if on_push is not None:
                    await on_push(msg)
            if done(msg):
                return out


def finish_of(request_id: str) -> Callable[[Received], bool]:
    def done(msg: Received) -> bool:
        is_finish = isinstance(msg, Request) and msg.method == "chat/finish"
        return is_finish and msg.params["requestId"] == request_id  # type: ignore[union-attr]

    return done


def pushes(
    msgs: list[Received], method: str, request_id: str | None = None
) -> list[dict[str, Any]]:
    return [
        m.params
        for m in msgs
        if isinstance(m, Request)
        and m.method == method
        and (request_id is None or m.params.get("requestId") == request_id)
    ]


def answer_text(msgs: list[Received], request_id: str | None = None) -> str:
    return "".join(p["text"] for p in pushes(msgs, "chat/answer", request_id))


def ask_params(request_id: str, question: str, session_id: str = "", **kw: Any) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "sessionId": session_id,
        "questionText": question,
        "chatTask": "FREE_INPUT",
        "isReply": False,
        "stream": True,
        "sessionType": "chat",
        "mode": "chat",
        "extra": None,
        **kw,
    }


@pytest.fixture
async def ports(nursery: trio.Nursery, tmp_path: Path) -> SimulatorPorts:
    config = SimulatorConfig(work_dir=tmp_path, ack_timeout=0.3, tool_timeout=0.5)
    ports: SimulatorPorts = await nursery.start(serve_simulator, config)
    return ports


@asynccontextmanager
async def connect(ports: SimulatorPorts) -> AsyncIterator[Client]:
    """Like ``open_websocket_url(ports.ws_url)``, but we own the TCP stream and close it:
    trio-websocket 0.12's client never closes its socket once the peer closed first (its
    ``aclose`` returns early), which filterwarnings=error turns into a ResourceWarning failure."""
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", ports.websocket)
        try:
            ws = await wrap_client_stream(nursery, stream, "127.0.0.1", "/")
            try:
                yield Client(ws)
            finally:
                await ws.aclose()
        finally:
            await stream.aclose()


def log_text(tmp_path: Path) -> str:
    return (tmp_path / "logs" / "lingma.log").read_text(encoding="utf-8")


async def test_readiness_files(ports: SimulatorPorts, tmp_path: Path) -> None:
    ready = f"Communication servers ready - WebSocket: {ports.websocket}, HTTP: {ports.http}"
    assert ready in log_text(tmp_path)
    info = json.loads((tmp_path / "SharedClientCache" / ".info.json").read_text())
    assert info == {
        "websocketPort": ports.websocket,
        "pid": os.getpid(),
        "ipcServerPath": "",
        "isDev": False,
    }
    with trio.fail_after(5):
        async with await trio.open_tcp_stream("127.0.0.1", ports.http) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := await stream.receive_some():
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"ok")


async def test_handshake_methods(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            params = {"processId": None, "rootUri": "file:///p", "capabilities": {}}
            init = await client.call("initialize", params)
            assert init["serverInfo"] == {"name": "Lingma", "version": "2.11.1-sim"}
            auth = await client.call("auth/status")
            assert auth["status"] == 2 and auth["whitelist"] == 3
            models = await client.call("config/queryModels", {})
            assert set(models) >= {"chat", "assistant", "developer", "inline"}
            by_key = {m["key"]: m for m in models["chat"]}
            assert by_key["dashscope_qwen3_coder_default"]["displayName"] == "Auto"
            assert by_key["dashscope_qwen_plus_20250428_thinking"]["isReasoning"] is True
            assert by_key["dashscope_qwen3_coder"]["format"] == "openai"
            assert await client.call("ping") == {"success": True}
            assert await client.call("shutdown") is None


async def test_echo_turn(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            result = await client.call("chat/ask", ask_params("r1", "hello simulator world", "s1"))
            assert result == {
                "requestId": "r1",
                "isSuccess": True,
                "status": "ok",
                "errorMessage": "",
            }
            msgs = await client.collect(finish_of("r1"))
    assert all(isinstance(m, Request) for m in msgs)
    ids = [m.id for m in msgs if isinstance(m, Request)]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids)
    methods = [m.method for m in msgs if isinstance(m, Request)]
    assert methods[:2] == ["chat/process_step_callback", "session/title/update"]
    assert methods[-2:] == ["chat/process_step_callback", "chat/finish"]
    texts = [p["text"] for p in pushes(msgs, "chat/answer")]
    assert "" in texts and len(texts) > 3
    assert "".join(texts) == "Echo: hello simulator world"
    finish = pushes(msgs, "chat/finish")[0]
    assert finish["reason"] == "success" and finish["statusCode"] == 200
    assert finish["fullAnswer"] == "Echo: hello simulator world"


async def test_empty_session_id_gets_a_uuid(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "hi"))
            msgs = await client.collect(finish_of("r1"))
            stats = await client.call("sim/stats")
    session_ids = {p["sessionId"] for m in msgs if isinstance(m, Request) for p in [m.params]}
    assert len(session_ids) == 1 and "" not in session_ids
    assert stats["sessions"] == {session_ids.pop(): 1}


async def test_think_scenario(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "[sim think] why"))
            msgs = await client.collect(finish_of("r1"))
    thinks = pushes(msgs, "chat/think")
    assert thinks[0]["step"] == "start" and thinks[-1]["step"] == "done"
    assert "".join(t["text"] for t in thinks) == "Thinking about: why"
    assert answer_text(msgs) == "Echo: why"


async def test_chat_stop_cancels_a_hanging_turn(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "[sim hang after=1] hi", "s1"))
            first = await client.collect(lambda m: getattr(m, "method", "") == "chat/answer")
            assert await client.call("ping") == {"success": True}  # still served while hanging
            assert await client.call("chat/stop", {"requestId": "r1", "sessionId": "s1"}) == {}
            msgs = await client.collect(finish_of("r1"))
            stats = await client.call("sim/stats")
    finish = pushes(msgs, "chat/finish")[0]
    assert (finish["reason"], finish["statusCode"]) == ("cancelled", 200)
    assert finish["fullAnswer"] == answer_text(first) == "Echo: hi"
    assert stats["stops"] == ["r1"]


async def test_unknown_method_and_notification(ports: SimulatorPorts, tmp_path: Path) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.ws.send_message(client.peer.send_notification("initialized", {}))
            error = await client.request("foo/bar", {})
            assert isinstance(error, ErrorResponse)
            assert (error.error.code, error.error.message) == (-32601, "unknown method: foo/bar")
            assert await client.call("ping") == {"success": True}
            assert not client.backlog  # the notification got no reply
    log = log_text(tmp_path)
    assert "unknown method: initialized" in log and "unknown method: foo/bar" in log


async def test_unframed_json_is_ignored(ports: SimulatorPorts, tmp_path: Path) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.ws.send_message('{"jsonrpc":"2.0","id":99,"method":"ping"}')
            assert await client.call("ping") == {"success": True}
            assert not client.backlog
    assert "Unknown message header" in log_text(tmp_path)


async def test_unanswered_scenario_stalls_until_acked(
    ports: SimulatorPorts, tmp_path: Path
) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "[sim unanswered] hi"))
            first = await client.next()
            assert isinstance(first, Request)
            with trio.move_on_after(0.5) as quiet:
                await client.next()
            assert quiet.cancelled_caught  # nothing more until the first push is answered
            await client.ack(first)
            second = await client.next()
            assert isinstance(second, Request) and second.id == first.id + 1
            await client.ack(second)
            await client.collect(finish_of("r1"))
            stats = await client.call("sim/stats")
    assert stats["unansweredPushes"] >= 1
    assert "no response from client, timeout reached" in log_text(tmp_path)


async def test_history_per_session(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            for rid, reply in (("r1", False), ("r2", True)):
                await client.call("chat/ask", ask_params(rid, f"q {rid}", "s1", isReply=reply))
                await client.collect(finish_of(rid))
            await client.call("chat/ask", ask_params("r3", "other", "s2"))
            await client.collect(finish_of("r3"))
            sessions = {s["sessionId"]: s for s in await client.call("chat/listAllSessions")}
            assert sessions["s1"]["turnCount"] == 2
            answers = [r["answer"] for r in sessions["s1"]["chatRecords"]]
            assert answers == ["Echo: q r1", "Echo: q r2"]
            assert await client.call("chat/deleteSessionById", {"sessionId": "s1"}) is None
            stats = await client.call("sim/stats")
    assert stats["sessions"] == {"s2": 1}
    assert stats["deletedSessions"] == ["s1"]
    assert [(a["requestId"], a["isReply"], a["questionText"]) for a in stats["asks"]] == [
        ("r1", False, "q r1"),
        ("r2", True, "q r2"),
        ("r3", False, "other"),
    ]


async def test_concurrent_asks_interleave(ports: SimulatorPorts) -> None:
    finished: set[str] = set()

    def both_done(msg: Received) -> bool:
        if isinstance(msg, Request) and msg.method == "chat/finish":
            finished.add(msg.params["requestId"])
        return finished == {"a", "b"}

    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("a", "[sim slow delay=0.02] first question"))
            await client.call("chat/ask", ask_params("b", "[sim slow delay=0.02] second question"))
            msgs = await client.collect(both_done)
    assert answer_text(msgs, "a") == "Echo: first question"
    assert answer_text(msgs, "b") == "Echo: second question"
    order = [p["requestId"] for p in pushes(msgs, "chat/answer")]
    assert order.index("b") < len(order) - 1 - order[::-1].index("a")  # b starts before a ends


async def test_tools_scenario(ports: SimulatorPorts) -> None:
    async def run_tool(push: Request) -> None:
        if push.method == "tool/invoke":
            result = {
                "toolCallId": push.params["toolCallId"],
                "name": "read_file",
                "success": True,
                "result": {"content": "print(1)"},
                "startTime": 0,
                "timeConsuming": 1,
            }
            _, frame = client.peer.send_request("tool/invokeResult", result)
            await client.ws.send_message(frame)

    def request_finished(msg: Received) -> bool:
        return isinstance(msg, Request) and msg.params.get("toolCallStatus") == "REQUEST_FINISHED"

    with trio.fail_after(5):
        async with connect(ports) as client:
            params = ask_params("r1", "[sim tools] read a.py", "s1", mode="agent")
            await client.call("chat/ask", params)
            msgs = await client.collect(request_finished, on_push=run_tool)
    syncs = [p["toolCallStatus"] for p in pushes(msgs, "tool/call/sync")]
    assert syncs == ["PENDING", "RUNNING", "FINISHED", "REQUEST_FINISHED"]
    invoke = pushes(msgs, "tool/invoke")[0]
    assert invoke == {
        "requestId": "r1",
        "toolCallId": "sim-r1-0",
        "name": "read_file",
        "parameters": {"file_path": "/project/a.py"},
        "async": True,
    }
    finished = pushes(msgs, "tool/call/sync")[2]
    assert finished["results"] == [{"content": '{"content": "print(1)"}'}]
    replies = [m for m in msgs if isinstance(m, Response) and m.method == "tool/invokeResult"]
    assert [r.result for r in replies] == [{"errorCode": None, "errorMessage": None}]
    assert answer_text(msgs).startswith("```toolCall::read_file::sim-r1-0::INIT\n```")
    methods = [m.method for m in msgs if isinstance(m, Request)]
    assert methods.index("chat/finish") == len(methods) - 2


async def test_tools_error_and_timeout(ports: SimulatorPorts) -> None:
    def request_finished(msg: Received) -> bool:
        return isinstance(msg, Request) and msg.params.get("toolCallStatus") == "REQUEST_FINISHED"

    with trio.fail_after(5):
        async with connect(ports) as client:
            # Nobody sends tool/invokeResult: both calls time out (tool_timeout=0.5) as ERROR.
            await client.call("chat/ask", ask_params("r1", "[sim tools calls=2 status=ERROR] x"))
            msgs = await client.collect(request_finished)
    syncs = pushes(msgs, "tool/call/sync")
    assert [s["toolCallStatus"] for s in syncs].count("ERROR") == 2
    assert len(pushes(msgs, "tool/invoke")) == 2


async def test_stray_and_error_and_long(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "[sim stray] hello there"))
            stray = await client.collect(finish_of("r1"))
            await client.call("chat/ask", ask_params("r2", "[sim error status=503 after=1] hi"))
            error = await client.collect(finish_of("r2"))
            await client.call("chat/ask", ask_params("r3", "[sim long chunks=20]"))
            long = await client.collect(finish_of("r3"))
    assert pushes(stray, "workspace/configuration")
    assert any(isinstance(m, Notification) and m.method == "window/logMessage" for m in stray)
    assert answer_text(stray) == "Echo: hello there"
    finish = pushes(error, "chat/finish")[0]
    assert (finish["reason"], finish["statusCode"]) == ("error", 503)
    assert finish["fullAnswer"] == "Echo: hi"
    assert len(pushes(long, "chat/answer")) == 20


async def test_crash_and_disconnect_leave_the_listener_up(ports: SimulatorPorts) -> None:
    with trio.fail_after(5):
        async with connect(ports) as client:
            await client.call("chat/ask", ask_params("r1", "[sim hang] x"))
        async with connect(ports) as client:  # the previous client vanished mid-turn
            await client.call("chat/ask", ask_params("r2", "[sim crash after=2] x"))
            with pytest.raises(ConnectionClosed):
                await client.collect(lambda m: False)
        async with connect(ports) as client:
            assert await client.call("ping") == {"success": True}


async def test_exit_notification_stops_the_simulator(tmp_path: Path) -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(serve_simulator, SimulatorConfig(work_dir=tmp_path))
            async with connect(ports) as client:
                await client.ws.send_message(client.peer.send_notification("exit"))
    assert "simulator stopped" in log_text(tmp_path)


# -- the command line -------------------------------------------------------------------


async def _start_cli(nursery: trio.Nursery, work_dir: Path) -> tuple[trio.Process, SimulatorPorts]:
    argv = [sys.executable, "-m", "trio_lingma.simulator", "start", f"--workDir={work_dir}"]
    argv += ["--socketPort", "0", "--httpPort", "0", "--endpoint", "http://127.0.0.1:1"]
    run = functools.partial(trio.run_process, argv, check=False, stdout=subprocess.DEVNULL)
    proc: trio.Process = await nursery.start(run)
    log = work_dir / "logs" / "lingma.log"
    while not (log.exists() and "Communication servers ready" in log.read_text()):  # noqa: ASYNC110
        await trio.sleep(0.05)  # another process writes the file: nothing to wait on but time
    info = json.loads((work_dir / "SharedClientCache" / ".info.json").read_text())
    assert info["pid"] == proc.pid
    http = int(log.read_text().split("HTTP: ")[1].split()[0])
    return proc, SimulatorPorts(websocket=info["websocketPort"], http=http)


async def test_cli_subprocess_ping_and_sigterm(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            proc, ports = await _start_cli(nursery, tmp_path)
            async with connect(ports) as client:
                assert await client.call("ping") == {"success": True}
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0


async def test_cli_subprocess_crash_exits_1(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            proc, ports = await _start_cli(nursery, tmp_path)
            async with connect(ports) as client:
                await client.call("chat/ask", ask_params("r1", "[sim crash after=1] x"))
                with pytest.raises(ConnectionClosed):
                    await client.collect(lambda m: False)
            assert await proc.wait() == 1


class _TaskNames(trio.abc.Instrument):
    def __init__(self) -> None:
        self.names: list[str] = []

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.names.append(task.name)


async def test_every_simulator_task_is_named(ports: SimulatorPorts) -> None:
    recorder = _TaskNames()
    trio.lowlevel.add_instrument(recorder)
    try:
        with trio.fail_after(5):
            async with connect(ports) as client:
                await client.call("chat/ask", ask_params("r1", "[sim tools] x"))
                await client.collect(finish_of("r1"))
    finally:
        trio.lowlevel.remove_instrument(recorder)
    assert any(name.startswith("request chat/ask") for name in recorder.names)
    assert any(name.startswith("tool call sim-r1-0") for name in recorder.names)
    assert not [name for name in recorder.names if name.startswith("trio_lingma.simulator")]
