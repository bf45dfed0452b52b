"""``serve_simulator``: the listeners, readiness files and per-connection error fences.

Theory of operation
-------------------
Readiness is reported exactly like the real binary (lingma-protocol.md §1.2, §1.4): once the
WebSocket listener (path ``/``, 127.0.0.1 only) accepts connections, the simulator writes
``<workDir>/SharedClientCache/.info.json`` and then appends ``Communication servers ready -
WebSocket: N, HTTP: M`` to ``<workDir>/logs/lingma.log``, so whoever sees the log line can
already read the discovery file. The HTTP port answers ``200 ok`` to anything, just so that it
is a real port.

trio-websocket takes the whole listener down if a handler raises, so every connection is
fenced: a client that disconnects is logged quietly, any other failure is logged as an error,
and only cancellation propagates.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import tempfile
from pathlib import Path

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from ._acp import AcpDialect, VsCodeAcpDialect
from ._channel import Channel, ChannelClosed, IpcChannel, WsChannel
from ._connection import Connection
from ._dialect import Dialect
from ._legacy import LegacyDialect
from ._log import LingmaLog
from ._profile import PROFILES, Profile
from ._runtime import Simulator, Timeouts

__all__ = ["DIALECTS", "SimulatorConfig", "SimulatorPorts", "serve_simulator"]

HOST = "127.0.0.1"
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
#: sun_path is 108 bytes on Linux (104 on macOS), the terminating NUL included.
MAX_SOCKET_PATH = 104

#: dialect name → factory. An ACP dialect would be one more module and one more entry.
DIALECTS: dict[str, type[LegacyDialect]] = {"legacy": LegacyDialect, "acp": AcpDialect, "acp-vscode": VsCodeAcpDialect}

_HTTP_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


@attrs.frozen(kw_only=True)
class SimulatorConfig:
    """How to run one simulator. Port 0 picks a free port."""

    work_dir: Path = attrs.field(converter=Path)
    socket_port: int = 0
    http_port: int = 0
    dialect: str = attrs.field(default="legacy", validator=attrs.validators.in_(DIALECTS))
    ack_timeout: float = 3.0
    tool_timeout: float = 5.0
    #: ``[sim crash]`` calls os._exit(1) when True (the CLI); in-process it drops the connection.
    exit_on_crash: bool = False
    #: What ``auth/status`` reports: 2 logged in, 1 not logged in, 3 login expired.
    auth_status: int = 2
    #: Largest message accepted; a bigger one closes the connection (WebSocket 1009), as a
    #: runtime with a read limit does. None: the profile's, else 64 MiB (the real limit is not known).
    max_message_bytes: int | None = None
    #: Behaviour seen on real runtimes (``_profile.py``); ``realistic-acp`` forces the ACP dialect.
    profile: str = attrs.field(default="default", validator=attrs.validators.in_(PROFILES))
    #: Also listen on this unix socket (named in ``.info.json``'s ``ipcServerPath``); empty: only
    #: if the profile asks for IPC, at ``<workDir>/SharedClientCache/lingma.sock`` (or a shorter
    #: path in the temp dir when that one is too long for a socket).
    ipc_socket: str = ""

    @property
    def behaviour(self) -> Profile:
        return PROFILES[self.profile]

    @property
    def served_dialect(self) -> str:
        return self.behaviour.dialect or self.dialect

    @property
    def message_limit(self) -> int:
        return self.max_message_bytes or self.behaviour.max_message_bytes or DEFAULT_MAX_MESSAGE

    def ipc_path(self) -> str:
        """The unix socket to listen on ("" for none)."""
        if self.ipc_socket or not self.behaviour.ipc:
            return self.ipc_socket
        path = str(self.work_dir.resolve() / "SharedClientCache" / "lingma.sock")
        if len(path.encode()) >= MAX_SOCKET_PATH:
            path = tempfile.mktemp(prefix="lingma-", suffix=".sock")  # only a name: bind() creates it
        return path


@attrs.frozen
class SimulatorPorts:
    websocket: int
    http: int
    ipc: str = ""

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.websocket}/"


async def serve_simulator(
    config: SimulatorConfig,
    *,
    task_status: trio.TaskStatus[SimulatorPorts] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a simulated Lingma binary until cancelled or an ``exit`` notification.

    Use ``ports = await nursery.start(serve_simulator, config)``; it returns once the servers
    listen and the readiness line is logged.
    """
    log = LingmaLog.in_work_dir(config.work_dir)
    try:
        async with trio.open_nursery() as nursery:
            sim = Simulator(
                log=log,
                timeouts=Timeouts(ack=config.ack_timeout, tool=config.tool_timeout),
                exit_scope=nursery.cancel_scope,
                exit_on_crash=config.exit_on_crash,
                auth_status=config.auth_status,
                profile=config.behaviour,
            )
            ports = await _start_listeners(nursery, config, sim)
            _write_info(config.work_dir, ports)
            log.info(_ready_line(ports))
            task_status.started(ports)
    finally:
        log.info("simulator stopped")
        log.close()


async def _start_listeners(
    nursery: trio.Nursery, config: SimulatorConfig, sim: Simulator
) -> SimulatorPorts:
    dialect = DIALECTS[config.served_dialect](sim)
    handler = functools.partial(_accept_websocket, sim, dialect)
    serve_ws = functools.partial(serve_websocket, handler, HOST, config.socket_port, None,
                                 max_message_size=config.message_limit)
    server = await nursery.start(serve_ws, name=f"simulator websocket :{config.socket_port}")
    serve_http = functools.partial(_serve_http, config.http_port, sim.log)
    http_port = await nursery.start(serve_http, name=f"simulator http :{config.http_port}")
    ipc = config.ipc_path()
    if ipc:
        serve_ipc = functools.partial(_serve_ipc, ipc, sim, dialect, config.message_limit)
        await nursery.start(serve_ipc, name=f"simulator ipc {ipc}")
    return SimulatorPorts(websocket=server.port, http=http_port, ipc=ipc)


async def _accept_websocket(sim: Simulator, dialect: Dialect, request: WebSocketRequest) -> None:
    conn_id = sim.next_connection_id()
    try:
        ws = await request.accept()
    except ConnectionClosed:
        sim.log.info(f"connection #{conn_id} closed during the handshake")
        return
    await _serve_connection(sim, dialect, WsChannel(ws), conn_id)


async def _serve_connection(sim: Simulator, dialect: Dialect, channel: Channel, conn_id: int) -> None:
    """One connection, fenced: a failure never takes a listener down (only Cancelled escapes)."""
    try:
        sim.log.info(f"connection #{conn_id} accepted from {channel.remote}")
        await Connection(channel, sim, dialect, conn_id).serve()
    except* (ChannelClosed, ConnectionClosed):
        sim.log.info(f"connection #{conn_id} closed by the client")
    except* Exception as group:
        sim.log.error(f"connection #{conn_id} failed: {group.exceptions!r}")


async def _serve_ipc(path: str, sim: Simulator, dialect: Dialect, limit: int, *,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on the unix socket ``path`` (replacing a stale one) until cancelled; remove it then."""
    _remove_socket(path, make_parent=True)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen()
        listener = trio.SocketListener(sock)
        task_status.started()

        async def handler(stream: trio.SocketStream) -> None:
            async with stream:
                await _serve_connection(sim, dialect, IpcChannel(stream, max_message_bytes=limit),
                                        sim.next_connection_id())

        await trio.serve_listeners(handler, [listener])
    finally:
        sock.close()
        _remove_socket(path)


def _remove_socket(path: str, *, make_parent: bool = False) -> None:
    """A stale socket file would make bind() fail (local file system: instant, so sync)."""
    if make_parent:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).unlink(missing_ok=True)


def _ready_line(ports: SimulatorPorts) -> str:
    return f"Communication servers ready - WebSocket: {ports.websocket}, HTTP: {ports.http}"


def _write_info(work_dir: Path, ports: SimulatorPorts) -> None:
    """The discovery file clients read (LP ``resolveSharedClientInfo``), written atomically."""
    cache = work_dir / "SharedClientCache"
    cache.mkdir(parents=True, exist_ok=True)
    info = {
        "websocketPort": ports.websocket,
        "pid": os.getpid(),
        "ipcServerPath": ports.ipc,
        "isDev": False,
    }
    tmp = cache / ".info.json.tmp"
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, cache / ".info.json")


async def _serve_http(
    port: int, log: LingmaLog, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    listeners = await trio.open_tcp_listeners(port, host=HOST)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(functools.partial(_answer_http, log), listeners)


async def _answer_http(log: LingmaLog, stream: trio.SocketStream) -> None:
    """Read the request head (bounded in size and time), answer 200 "ok", close."""
    try:
        head = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in head and len(head) < 8192:
                data = await stream.receive_some(4096)
                if not data:
                    break
                head += data
        await stream.send_all(_HTTP_OK)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.info(f"http client went away: {exc!r}")
    finally:
        await stream.aclose()
