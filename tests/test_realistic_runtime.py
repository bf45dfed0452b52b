"""The simulator's ``realistic-acp`` profile (what public captures of real desktop runtimes show)
and the unix-socket IPC transport: the client dialect against it over a real socket, discovery of
``ipcServerPath``, and attach mode preferring the socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_lingma.backend.acp import initialize as acp_initialize
from trio_lingma.backend.attach import attach_connector
from trio_lingma.backend.client import LingmaClient
from trio_lingma.backend.dialects import Connection, detect, handshake
from trio_lingma.backend.discovery import DiscoveryError, RuntimeEndpoint, discover_runtime, parse_info
from trio_lingma.backend.ipc import IpcTransport, open_ipc_transport
from trio_lingma.errors import UpstreamClosed, UpstreamFailed, UpstreamUnavailable
from trio_lingma.protocol.events import Event, Finish, TextDelta, ToolCallResult, ToolCallStart
from trio_lingma.settings import ConfigError, Settings
from trio_lingma.simulator import SimulatorConfig, SimulatorPorts, serve_simulator
from trio_lingma.simulator._acp import acp_steps
from trio_lingma.simulator._plan import Ask, Notify, Push, plan_turn
from trio_lingma.simulator._profile import PROFILES

REALISTIC = PROFILES["realistic-acp"]


def _label(step: Any) -> str:
    if isinstance(step, Push) and step.method == "chat/process_step_callback":
        return step.params["step"]
    if isinstance(step, Notify) and step.method == "session/update":
        update = step.params["update"]
        return update["type"] if update["sessionUpdate"] == "notification" else update["sessionUpdate"]
    return str(step.method)


def test_the_realistic_order_of_a_turn() -> None:
    plan = plan_turn(Ask(request_id="R", session_id="S", question_text="hi there"))
    labels = [_label(step) for step in acp_steps(plan, REALISTIC)]
    assert labels[:4] == ["step_start", "step_end", "snapshot/syncAll", "session/title/update"]
    assert labels[4:-2] == ["agent_message_chunk"] * (len(labels) - 6)
    assert labels[-2:] == ["context_usage", "chat_finish"]
    finish = acp_steps(plan, REALISTIC)[-1]
    assert isinstance(finish, Notify) and finish.params["update"]["data"]["fullAnswer"] == ""
    agent = [_label(s) for s in acp_steps(plan_turn(Ask(request_id="R", session_id="S", question_text="[sim tools]")),
                                          REALISTIC)]
    assert agent.index("plan") == agent.index("tool_call") - 1


async def test_auto_detection_finds_acp_on_a_realistic_runtime(realistic: SimulatorPorts, tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with over_ipc(realistic) as client:
            connection, found = await handshake(detect, client, str(tmp_path), timeout=5)
            assert connection.name == "acp" and found.logged_in


@pytest.fixture
async def realistic(nursery: trio.Nursery, tmp_path: Path) -> SimulatorPorts:
    config = SimulatorConfig(work_dir=tmp_path / "ide", profile="realistic-acp")
    ports: SimulatorPorts = await nursery.start(serve_simulator, config)
    return ports


async def _serve(client: LingmaClient, *, task_status: trio.TaskStatus[None]) -> None:
    try:
        await client.serve(task_status=task_status)
    except UpstreamClosed:
        pass


@asynccontextmanager
async def over_ipc(ports: SimulatorPorts) -> AsyncIterator[LingmaClient]:
    async with open_ipc_transport(ports.ipc) as transport, trio.open_nursery() as nursery:
        client = LingmaClient(transport, name="ipc")
        await nursery.start(_serve, client)
        yield client
        nursery.cancel_scope.cancel()


async def _turn(connection: Connection, question: str, rid: str, mode: str = "chat") -> list[Event]:
    events: list[Event] = []
    async with connection.open_turn(request_id=rid, session_id="fresh", question=question, model_key="",
                                    is_reply=False, mode=mode, timeout=5) as turn:
        while not turn.finished:
            events += await turn.receive()
    return events


def _read_info(work_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((work_dir / "SharedClientCache" / ".info.json").read_text())
    return {**info, "is_socket": Path(info["ipcServerPath"]).is_socket()}


async def test_the_dialect_copes_with_a_realistic_runtime_over_a_unix_socket(
    realistic: SimulatorPorts, tmp_path: Path,
) -> None:
    info = _read_info(tmp_path / "ide")
    assert info["ipcServerPath"] == realistic.ipc and info["is_socket"]
    with trio.fail_after(10):
        async with over_ipc(realistic) as client:
            assert isinstance(client._transport, IpcTransport)
            connection, found = await handshake(acp_initialize, client, str(tmp_path), timeout=5)  # 2 refused, then 1
            assert found.logged_in and found.models
            events = await _turn(connection, "hello", "r1")
            assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Echo: hello"
            assert events[-1] == Finish()
            tools = await _turn(connection, "[sim tools calls=2] x", "r2", mode="agent")
            assert [e.name for e in tools if isinstance(e, ToolCallStart)] == ["read_file", "read_file"]
            results = [e for e in tools if isinstance(e, ToolCallResult)]
            assert [r.content for r in results] == ["simulated contents of /project/a.py",
                                                    "simulated contents of /project/a1.py"]
            stats = await client.call("sim/stats")
    assert stats["unansweredPushes"] == 0


@pytest.mark.parametrize(("params", "message"), [
    ([], "json: cannot unmarshal array into Go value of type struct {}"),
    ("x", "json: cannot unmarshal string into Go value of type struct {}"),
])
async def test_the_realistic_runtime_refuses_params_that_are_not_an_object(
    realistic: SimulatorPorts, params: Any, message: str,
) -> None:
    with trio.fail_after(10):
        async with over_ipc(realistic) as client:
            with pytest.raises(UpstreamFailed, match=message.replace("{", r"\{").replace("}", r"\}")):
                await client.call("config/queryModels", params)
            assert await client.call("config/queryModels") is not None  # {} is fine
            with pytest.raises(UpstreamFailed, match="requestId is empty"):
                session = await client.call("session/new", {"cwd": "/tmp", "mcpServers": []})
                await client.call("session/prompt", {"sessionId": session["sessionId"], "prompt": [], "_meta": {}})


async def test_a_message_over_the_limit_ends_the_ipc_connection(realistic: SimulatorPorts) -> None:
    with trio.fail_after(10):
        async with over_ipc(realistic) as client:
            with pytest.raises(UpstreamClosed):
                await client.call("ping", {"pad": "p" * (REALISTIC.max_message_bytes or 0)})


async def test_nobody_listening_on_the_socket(tmp_path: Path) -> None:
    with pytest.raises(UpstreamUnavailable, match="unix socket .*gone.sock .from test"):
        async with open_ipc_transport(str(tmp_path / "gone.sock"), source="test"):
            pass  # pragma: no cover


# -- discovery and attach ------------------------------------------------------------------


def test_discovery_files_that_offer_a_unix_socket() -> None:
    assert parse_info('{"ipcServerPath": "/run/lingma.sock", "pid": 7}', is_json=True) == (None, 7, "/run/lingma.sock")
    assert parse_info("36510\n7\n/run/lingma.sock\n", is_json=False) == (36510, 7, "/run/lingma.sock")
    with pytest.raises(ValueError, match="Windows named pipes are not supported"):
        parse_info('{"ipcServerPath": "\\\\\\\\.\\\\pipe\\\\lingma-bf0f32"}', is_json=True)


def test_discovery_prefers_nothing_over_the_overrides(tmp_path: Path) -> None:
    info = tmp_path / ".info.json"
    info.write_text(json.dumps({"websocketPort": 36510, "ipcServerPath": "/run/lingma.sock", "pid": 3}))
    assert discover_runtime(info_file=str(info)) == RuntimeEndpoint(
        ws_url="ws://127.0.0.1:36510/", pid=3, ipc_path="/run/lingma.sock", source=str(info))
    assert discover_runtime(ipc_socket="/x/other.sock", info_file=str(info)) == RuntimeEndpoint(
        ipc_path="/x/other.sock", source="LINGMA_IPC_SOCKET")
    with pytest.raises(DiscoveryError, match="not both"):
        discover_runtime(ws_url="ws://127.0.0.1:1/", ipc_socket="/x.sock")
    with pytest.raises(ConfigError, match="LINGMA_IPC_SOCKET"):
        Settings.from_env({"LINGMA_WS_URL": "ws://127.0.0.1:1/", "LINGMA_IPC_SOCKET": "/x.sock"})


async def test_attach_prefers_the_socket_and_falls_back_to_the_websocket(
    realistic: SimulatorPorts, tmp_path: Path,
) -> None:
    settings = Settings(lingma_attach=True)
    both = RuntimeEndpoint(ws_url=realistic.ws_url, ipc_path=realistic.ipc, source="test")
    stale = RuntimeEndpoint(ws_url=realistic.ws_url, ipc_path=str(tmp_path / "stale.sock"), source="test")
    with trio.fail_after(10):
        async with attach_connector(settings, discover=lambda _: both)(None) as transport:
            assert isinstance(transport, IpcTransport)
        async with attach_connector(settings, discover=lambda _: stale)(None) as transport:
            assert not isinstance(transport, IpcTransport)
        only_socket = RuntimeEndpoint(ipc_path=str(tmp_path / "stale.sock"), source="test")
        with pytest.raises(UpstreamUnavailable):
            async with attach_connector(settings, discover=lambda _: only_socket)(None):
                pass  # pragma: no cover
