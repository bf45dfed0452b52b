"""Finding a running runtime: both discovery file formats, the search order, the overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from trio_lingma.backend.attach import attach_connector
from trio_lingma.backend.dialects import make_dialect
from trio_lingma.backend.discovery import (
    DiscoveryError,
    RuntimeEndpoint,
    candidate_info_files,
    discover_from_settings,
    discover_runtime,
    parse_info,
)
from trio_lingma.backend.instance import Instance
from trio_lingma.backend.transport import open_websocket_transport
from trio_lingma.errors import UpstreamUnavailable
from trio_lingma.protocol.events import TextDelta
from trio_lingma.settings import ConfigError, Settings
from trio_lingma.simulator import SimulatorConfig, serve_simulator

INFO_JSON = {"websocketPort": 36510, "pid": 14060, "ipcServerPath": "\\\\.\\pipe\\lingma-bf0f32", "isDev": False}
INFO_TEXT = "36510\n14060\n\\\\.\\pipe\\lingma-bf0f32\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_both_formats() -> None:
    assert parse_info(json.dumps(INFO_JSON), is_json=True) == (36510, 14060, "\\\\.\\pipe\\lingma-bf0f32")
    assert parse_info(INFO_TEXT, is_json=False) == (36510, 14060, "\\\\.\\pipe\\lingma-bf0f32")
    assert parse_info('{"websocketPort": "37109"}', is_json=True) == (37109, None, "")
    assert parse_info("37010\n", is_json=False) == (37010, None, "")


@pytest.mark.parametrize(
    ("text", "is_json"),
    [
        ('{"websocketPort": 0, "ipcServerPath": "\\\\.\\pipe\\lingma-1"}', True),  # a Windows pipe only
        ('{"websocketPort": 0, "ipcServerPath": ""}', True),
        ("[36510]", True),
        ("not json", True),
        ("", False),
        ("port\n1\n", False),
        ('{"websocketPort": 70000}', True),
        ('{"websocketPort": true}', True),
    ],
)
def test_unusable_files(text: str, is_json: bool) -> None:
    with pytest.raises(ValueError):
        parse_info(text, is_json=is_json)


def test_ws_url_wins(tmp_path: Path) -> None:
    _write(tmp_path / ".lingma" / "SharedClientCache" / ".info.json", json.dumps(INFO_JSON))
    found = discover_runtime(ws_url="ws://127.0.0.1:1234/", info_file="/nonexistent", home=tmp_path, environ={})
    assert found == RuntimeEndpoint(ws_url="ws://127.0.0.1:1234/", source="LINGMA_WS_URL")
    with pytest.raises(DiscoveryError, match="LINGMA_WS_URL"):
        discover_runtime(ws_url="http://127.0.0.1:1234/")


def test_override_file(tmp_path: Path) -> None:
    info = _write(tmp_path / "custom.info", INFO_TEXT)
    _write(tmp_path / ".lingma" / "SharedClientCache" / ".info.json", '{"websocketPort": 1}')
    found = discover_runtime(info_file=str(info), home=tmp_path, environ={})
    assert found.ws_url == "ws://127.0.0.1:36510/" and found.pid == 14060 and found.source == str(info)


def test_override_must_exist_and_parse(tmp_path: Path) -> None:
    _write(tmp_path / ".lingma" / "SharedClientCache" / ".info.json", json.dumps(INFO_JSON))
    with pytest.raises(DiscoveryError, match="LINGMA_SHARED_CLIENT_INFO") as info:
        discover_runtime(info_file=str(tmp_path / "missing.json"), home=tmp_path, environ={})
    assert "missing.json" in str(info.value)
    bad = _write(tmp_path / "bad.info.json", "{")
    with pytest.raises(DiscoveryError, match="LINGMA_SHARED_CLIENT_INFO"):
        discover_runtime(info_file=str(bad), home=tmp_path, environ={})
    assert isinstance(info.value, ConfigError)


def test_search_order_linux(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"APPDATA": str(tmp_path / "appdata")}
    paths = candidate_info_files(home, env, "linux")
    assert paths[0] == home / ".config" / "QoderCN" / "SharedClientCache" / ".info.json"
    assert paths[1] == home / ".config" / "QoderCN" / "SharedClientCache" / ".info"
    assert paths[2] == home / ".config" / "QoderCN" / "sharedClientCache" / ".info.json"
    index = {p: i for i, p in enumerate(paths)}
    order = [
        home / ".config" / "Lingma" / "SharedClientCache" / ".info.json",
        home / ".qodercn" / "vscode" / "sharedClientCache" / ".info.json",
        home / ".qodercn" / "SharedClientCache" / ".info",
        home / ".lingma" / "vscode" / "sharedClientCache" / ".info.json",
        home / ".lingma" / "SharedClientCache" / ".info.json",
        tmp_path / "appdata" / "Lingma" / "SharedClientCache" / ".info.json",
    ]
    assert [index[p] for p in order] == sorted(index[p] for p in order)
    assert len(paths) == len(set(paths))


def test_search_order_other_platforms(tmp_path: Path) -> None:
    mac = candidate_info_files(tmp_path, {}, "darwin")
    assert mac[0] == tmp_path / "Library" / "Application Support" / "QoderCN" / "SharedClientCache" / ".info.json"
    win = candidate_info_files(tmp_path, {"APPDATA": str(tmp_path / "roaming")}, "win32")
    assert win[0] == tmp_path / "roaming" / "QoderCN" / "SharedClientCache" / ".info.json"
    assert sum(p.parts[-4] == "roaming" for p in win) == 3 * 2 * 2  # %APPDATA% is listed once
    xdg = candidate_info_files(tmp_path, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, "linux")
    assert xdg[0].is_relative_to(tmp_path / "xdg")


def test_first_existing_file_wins(tmp_path: Path) -> None:
    vscode = _write(tmp_path / ".lingma" / "vscode" / "sharedClientCache" / ".info", "36510\n14060\n")
    found = discover_runtime(home=tmp_path, environ={}, platform="linux")
    assert found.ws_url == "ws://127.0.0.1:36510/" and found.source == str(vscode)
    qoder = _write(tmp_path / ".qodercn" / "SharedClientCache" / ".info.json", '{"websocketPort": 37109, "pid": 9}')
    found = discover_runtime(home=tmp_path, environ={}, platform="linux")
    assert found == RuntimeEndpoint(ws_url="ws://127.0.0.1:37109/", pid=9, source=str(qoder))
    json_beside = _write(tmp_path / ".qodercn" / "SharedClientCache" / ".info", "1111\n")
    assert discover_runtime(home=tmp_path, environ={}, platform="linux").source == str(qoder)
    assert json_beside.exists()


def test_a_found_but_broken_file_is_reported(tmp_path: Path) -> None:
    broken = _write(tmp_path / ".lingma" / "SharedClientCache" / ".info.json", '{"websocketPort": "x"}')
    with pytest.raises(DiscoveryError, match="LINGMA_WS_URL") as info:
        discover_runtime(home=tmp_path, environ={}, platform="linux")
    assert str(broken) in str(info.value)


def test_nothing_found(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="LINGMA_WS_URL, LINGMA_IPC_SOCKET or LINGMA_SHARED_CLIENT_INFO"):
        discover_runtime(home=tmp_path, environ={}, platform="linux")


def test_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("APPDATA", "LOCALAPPDATA", "ProgramData"):
        monkeypatch.delenv(name, raising=False)
    _write(tmp_path / ".lingma" / "SharedClientCache" / ".info.json", json.dumps(INFO_JSON))
    assert discover_from_settings(Settings()).ws_url == "ws://127.0.0.1:36510/"
    url = Settings(lingma_ws_url="ws://127.0.0.1:9/")
    assert discover_from_settings(url).ws_url == "ws://127.0.0.1:9/"
    with pytest.raises(ConfigError, match="LINGMA_WS_URL"):
        Settings.from_env({"LINGMA_WS_URL": "127.0.0.1:9"})


def test_simulator_discovery_file_is_found(tmp_path: Path) -> None:
    """The simulator writes <workDir>/SharedClientCache/.info.json, a ``<base>/`` location."""
    _write(tmp_path / "SharedClientCache" / ".info.json", json.dumps({**INFO_JSON, "ipcServerPath": ""}))
    found = discover_runtime(info_file=str(tmp_path / "SharedClientCache" / ".info.json"))
    assert found.ws_url == "ws://127.0.0.1:36510/" and found.ipc_path == ""


# -- attach mode: an instance that connects to a discovered runtime ---------------------------


def _attached(tmp_path: Path, info: Path, dialect: str = "acp") -> Instance:
    settings = Settings(lingma_work_root=str(tmp_path / "work"), lingma_attach=True, lingma_dialect=dialect,
                        lingma_shared_client_info=str(info), restart_initial=0.05, restart_max=0.1)
    return Instance(0, settings, dialect=make_dialect(dialect), connector=attach_connector(settings))


async def _wait_for(instance: Instance, predicate: Callable[[Instance], bool]) -> None:
    while not predicate(instance):
        await instance.state_changed.wait()


async def test_instance_attaches_and_reattaches(nursery: trio.Nursery, tmp_path: Path) -> None:
    ide = tmp_path / "ide"
    info = ide / "SharedClientCache" / ".info.json"
    instance = _attached(tmp_path, info)
    with trio.fail_after(20):
        async with trio.open_nursery() as runtime:
            await runtime.start(serve_simulator, SimulatorConfig(work_dir=ide, dialect="acp"))
            await nursery.start(instance.run, name="lingma[0] supervisor")
            assert instance.connection is not None and instance.handshake is not None
            async with instance.connection.open_turn(
                request_id="r1", session_id="fresh", question="hi", model_key="",
                is_reply=False, mode="chat", timeout=5,
            ) as turn:
                events = []
                while not turn.finished:
                    events += await turn.receive()
            assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Echo: hi"
            runtime.cancel_scope.cancel()  # the IDE quits
        await _wait_for(instance, lambda i: not i.ready)
        async with trio.open_nursery() as runtime:  # and comes back on another port
            await runtime.start(serve_simulator, SimulatorConfig(work_dir=ide, dialect="acp"))
            await _wait_for(instance, lambda i: i.ready)
            assert instance.life == 2
            assert instance.connection is not None
            await instance.connection.ping(timeout=5)
            runtime.cancel_scope.cancel()


async def test_attach_failure_is_visible(nursery: trio.Nursery, tmp_path: Path) -> None:
    instance = _attached(tmp_path, tmp_path / "missing" / ".info.json")
    nursery.start_soon(instance.run, name="lingma[0] supervisor")
    with trio.fail_after(10):
        while instance.last_error is None:
            await instance.state_changed.wait()
    assert "LINGMA_SHARED_CLIENT_INFO" in instance.last_error
    assert not instance.ready


async def test_nobody_listening(tmp_path: Path) -> None:
    with trio.socket.socket() as sock:  # a port that is certainly closed
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(5), pytest.raises(UpstreamUnavailable, match=f"127.0.0.1:{port}.*from test"):
        async with open_websocket_transport(f"ws://127.0.0.1:{port}/", source="test"):
            pass  # pragma: no cover
