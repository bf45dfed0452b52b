"""Command line of the simulator, shaped like the real binary's (lingma-protocol.md §1.2).

``start`` accepts the binary's flags (``--workDir``, ``--socketPort``, ``--httpPort``; the
binary's ``--copyDataDir`` and ``--endpoint`` are accepted and ignored) plus simulator-only
flags. It runs until SIGTERM/SIGINT or an LSP ``exit`` notification and then exits with 0;
``[sim crash]`` exits with 1. ``status`` prints the logged-in JSON the binary prints.
"""

from __future__ import annotations

import argparse
import functools
import json
import signal
import sys
import tempfile
from collections.abc import Sequence

import trio

from ._profile import PROFILES
from ._server import DIALECTS, SimulatorConfig, SimulatorPorts, serve_simulator

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_lingma.simulator", description="Simulated Lingma local runtime."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="serve the simulated binary")
    start.add_argument("--workDir", help="logs/ and SharedClientCache/ go here (default: temp dir)")
    start.add_argument("--socketPort", type=int, default=37010, help="WebSocket port, 0 = any free")
    start.add_argument("--httpPort", type=int, default=37510, help="HTTP port, 0 = any free")
    start.add_argument("--copyDataDir", help="accepted and ignored (real binary: clone a data dir)")
    start.add_argument("--endpoint", help="accepted and ignored (real binary: cloud base URL)")
    start.add_argument("--dialect", choices=sorted(DIALECTS), default="legacy")
    start.add_argument(
        "--ackTimeout", type=float, default=3.0, help="seconds before a push is unanswered"
    )
    start.add_argument(
        "--toolTimeout", type=float, default=5.0, help="seconds a tool waits for the client"
    )
    start.add_argument(
        "--authStatus", type=int, default=2, help="auth/status value: 2 logged in, 1 not logged in"
    )
    start.add_argument(
        "--maxMessageBytes", type=int, default=None,
        help="largest message accepted; a bigger one closes the connection (WebSocket 1009); "
             "default: the profile's, else 64 MiB",
    )
    start.add_argument(
        "--profile", choices=sorted(PROFILES), default="default",
        help="behaviour seen on real runtimes; realistic-acp: the ACP dialect as captured live",
    )
    start.add_argument(
        "--ipcSocket", default="", help="also listen on this unix socket (ipcServerPath in .info.json)",
    )
    status = commands.add_parser("status", help="print the login status as JSON")
    status.add_argument("-o", dest="output", default="json")
    status.add_argument("--workDir")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "status":
        print(json.dumps({"logged_in": True, "username": "simulator"}))
        return 0
    config = SimulatorConfig(
        work_dir=args.workDir or tempfile.mkdtemp(prefix="lingma-sim-"),
        socket_port=args.socketPort,
        http_port=args.httpPort,
        dialect=args.dialect,
        ack_timeout=args.ackTimeout,
        tool_timeout=args.toolTimeout,
        auth_status=args.authStatus,
        max_message_bytes=args.maxMessageBytes,
        profile=args.profile,
        ipc_socket=args.ipcSocket,
        exit_on_crash=True,
    )
    trio.run(_run, config)
    return 0


async def _run(config: SimulatorConfig) -> None:
    """Serve until a signal arrives or the simulator stops by itself (``exit``)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(_serve_then_stop, config, nursery.cancel_scope)
            ports: SimulatorPorts = await nursery.start(serve, name="lingma simulator")
            print(
                f"Lingma simulator ready - WebSocket: {ports.websocket}, HTTP: {ports.http}, "
                f"{f'IPC: {ports.ipc}, ' if ports.ipc else ''}workDir: {config.work_dir}",
                flush=True,
            )
            async for signum in signals:
                print(f"received {signal.Signals(signum).name}, shutting down", file=sys.stderr)
                nursery.cancel_scope.cancel()
                break


async def _serve_then_stop(
    config: SimulatorConfig,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[SimulatorPorts] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await serve_simulator(config, task_status=task_status)
    finally:
        scope.cancel()
