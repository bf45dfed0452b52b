"""One supervised Lingma instance: its subprocess, its WebSocket channel, its restarts.

Theory of operation
-------------------
:meth:`Instance.run` is the only task that starts, watches, restarts or kills the instance's
process (style.md §8). One *life* of the instance is a nursery holding:

* the process task (:func:`~trio_lingma.backend.child.spawn`, so the runtime dies with the
  gateway even when the gateway is SIGKILLed; cancelling it escalates: the polite protocol
  ``shutdown``/``exit`` was already sent by the connection's clean-up, then SIGTERM, a grace
  period, SIGKILL);
* once the binary wrote ``Communication servers ready - WebSocket: N, HTTP: M`` to
  ``<workDir>/logs/lingma.log`` (lingma-protocol.md §1.2), the WebSocket connection with the
  client's reader and writer tasks, then the handshake;
* the health prober (``ping`` on an interval, bounded by a timeout).

The instance is READY only after the handshake; ``task_status.started()`` is reported the
first time it gets there. Each READY life has a new ``life`` number: upstream sessions belong to
one life (the session cache forgets them when it changes). Health follows the pure state machine
:func:`~trio_lingma.backend.pool.after_probe` (half-open: only a successful probe recovers).

For tests and embedding, a *connector* replaces the process: an async context manager that
yields a connected :class:`~trio_lingma.backend.transport.Transport` per life (e.g. one end
of :func:`~trio_lingma.backend.transport.memory_transport_pair` with a fake server on the
other). Anything that ends a life (process exit, connection closed, failed probes, handshake
error) is logged, the state becomes BACKOFF and the next life starts after
:func:`~trio_lingma.backend.backoff.restart_delay`. A life that stayed ready for
:data:`STABLE_AFTER` seconds resets the failure count.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import attrs
import trio

from ..bootstrap import find_binary
from ..errors import UpstreamError, UpstreamTimeout
from ..protocol import jsonrpc
from ..protocol.legacy import logged_in, not_logged_in_reason
from ..settings import Settings
from ..testing import free_port
from .backoff import restart_delay
from .child import Child, spawn
from .cleanup import shielded_cleanup
from .client import LingmaClient
from .dialects import Connection, Handshake, Initialize, handshake, make_dialect
from .pool import InstanceSnapshot, InstanceState, after_probe
from .transport import Transport, TransportClosed, open_websocket_transport

__all__ = ["Connector", "Instance", "InstanceSnapshot", "InstanceState", "binary_argv"]

log = logging.getLogger(__name__)

READY_LINE = re.compile(rb"Communication servers ready - WebSocket: (\d+), HTTP: (\d+)")
STABLE_AFTER = 60.0

#: One life's connection, instead of a process: ``async with connector(instance) as transport``.
Connector = Callable[["Instance"], AbstractAsyncContextManager[Transport]]


class InstanceDied(Exception):
    """The process exited, or never became ready."""


def binary_argv(settings: Settings) -> list[str]:
    """The command that starts the configured binary (the simulator when none is set)."""
    if settings.uses_simulator:
        return [sys.executable, "-m", "trio_lingma.simulator"]
    return [str(find_binary(settings))]  # LINGMA_BINARY, or found/installed when "auto"


def _nothing() -> None:
    pass


class Instance:
    """A Lingma runtime owned by this gateway. Run :meth:`run` in a nursery."""

    def __init__(self, index: int, settings: Settings, *, dialect: Initialize | None = None,
                 connector: Connector | None = None) -> None:
        self.index = index
        self.name = f"lingma[{index}]"
        self.settings = settings
        self.dialect = dialect or make_dialect(settings.lingma_dialect)
        self.workdir = Path(settings.lingma_work_root).resolve() / f"instance-{index}"
        self.limiter = trio.CapacityLimiter(settings.lingma_concurrency)
        self.state = InstanceState.STARTING
        self.client: LingmaClient | None = None
        #: The dialect bound to this life's connection (set by the handshake, READY with it).
        self.connection: Connection | None = None
        self.handshake: Handshake | None = None
        self.pid: int | None = None
        self.ws_port: int | None = None
        self.restarts = 0
        self.life = 0
        self.probe_failures = 0
        self._connector = connector
        self.last_error: str | None = None
        self.state_changed = trio.Event()
        #: Called after every state change (the gateway's wait for readiness listens here).
        self.on_state_change: Callable[[], None] = _nothing
        self._polite_exit_sent = False

    def __repr__(self) -> str:
        return (
            f"<Instance {self.name} {self.state.value} pid={self.pid} "
            f"in_flight={self.in_flight}/{self.limiter.total_tokens} restarts={self.restarts}>"
        )

    @property
    def in_flight(self) -> int:
        return int(self.limiter.borrowed_tokens)

    @property
    def ready(self) -> bool:
        return self.state is InstanceState.READY and self.client is not None and not self.client.closed

    def snapshot(self) -> InstanceSnapshot:
        return InstanceSnapshot(
            index=self.index, state=self.state, pid=self.pid, restarts=self.restarts,
            in_flight=self.in_flight, capacity=int(self.limiter.total_tokens),
            last_error=self.last_error, ws_port=self.ws_port, life=self.life,
            waiting=int(self.limiter.statistics().tasks_waiting),
            logged_in=self.handshake.logged_in if self.handshake else None,
        )

    def _set_state(self, state: InstanceState) -> None:
        if state is not self.state:
            log.info("%s: %s → %s", self.name, self.state.value, state.value)
            self.state = state
            self.state_changed.set()
            self.state_changed = trio.Event()
            self.on_state_change()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise the instance until cancelled; report started once first ready."""
        failures = 0
        started = False

        def on_ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        try:
            while True:
                began = trio.current_time()
                try:
                    await self._one_life(on_ready)
                except* Exception as group:
                    self.last_error = _describe(group)
                    log.warning("%s: %s", self.name, self.last_error)
                if self.state is InstanceState.READY and trio.current_time() - began >= STABLE_AFTER:
                    failures = 0
                self._forget_connection()
                failures += 1
                self.restarts += 1
                self._set_state(InstanceState.BACKOFF)
                delay = restart_delay(failures, initial=self.settings.restart_initial,
                                      maximum=self.settings.restart_max)
                log.info("%s: restarting in %.2f s (failure %d)", self.name, delay, failures)
                await trio.sleep(delay)
                self._set_state(InstanceState.STARTING)
        finally:
            self._forget_connection()
            self._set_state(InstanceState.STOPPED)

    def _forget_connection(self) -> None:
        self.client = None
        self.connection = None
        self.pid = None

    async def _one_life(self, on_ready: Callable[[], None]) -> None:
        if self._connector is not None:
            async with self._connector(self) as transport:
                await self._serve_connection(transport, on_ready)
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_file = self.workdir / "logs" / "lingma.log"
        offset = log_file.stat().st_size if log_file.exists() else 0
        socket_port, http_port = free_port(), free_port()
        argv = self._argv(socket_port, http_port)
        self._polite_exit_sent = False
        async with trio.open_nursery() as nursery:
            process = await nursery.start(functools.partial(self._own_process, argv),
                                          name=f"{self.name} process")
            self.pid = process.pid
            log.info("%s: started pid %d: %s", self.name, process.pid, shlex.join(argv))
            with trio.fail_after(self.settings.start_timeout):
                port = await _wait_ready_line(log_file, offset, process)
            self.ws_port = port
            await self._connected_life(port, on_ready)
            nursery.cancel_scope.cancel()

    def _argv(self, socket_port: int, http_port: int) -> list[str]:
        values = {"workdir": str(self.workdir), "socket_port": socket_port, "http_port": http_port}
        argv: list[str] = []
        for token in shlex.split(self.settings.lingma_argv):
            if token == "{binary}":
                argv += binary_argv(self.settings)
            else:
                argv.append(token.format(binary=shlex.join(binary_argv(self.settings)), **values))
        return argv

    async def _own_process(self, argv: list[str], *, task_status: trio.TaskStatus[Child]) -> None:
        """Start the runtime, report it, wait for its exit; when cancelled, stop it in order."""
        child = spawn(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            task_status.started(child)
            code = await child.wait()
        except BaseException:
            with trio.CancelScope(shield=True):  # bounded: the escalation ends in SIGKILL
                await self._deliver_cancel(child)
                await child.wait()
            raise
        raise InstanceDied(f"process exited with code {code}")

    async def _deliver_cancel(self, process: Child) -> None:
        """Escalate: (polite exit already sent) → SIGTERM → grace → SIGKILL."""
        grace = self.settings.stop_grace
        if self._polite_exit_sent:
            with trio.move_on_after(min(grace, 1.0)):
                await process.wait()
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(grace):
                await process.wait()
        if process.returncode is None:
            log.warning("%s: pid %d ignored SIGTERM for %.1f s; killing", self.name, process.pid, grace)
            process.kill()

    async def _connected_life(self, port: int, on_ready: Callable[[], None]) -> None:
        # open_websocket_transport owns the TCP stream: trio-websocket 0.12's client leaves the
        # socket open when the server closes first (a crashed runtime), so we close it ourselves.
        async with open_websocket_transport(f"ws://127.0.0.1:{port}/") as transport:
            try:
                await self._serve_connection(transport, on_ready)
            finally:
                await self._send_polite_exit(transport)

    async def _serve_connection(self, transport: Transport, on_ready: Callable[[], None]) -> None:
        client = LingmaClient(transport, name=self.name, max_message_bytes=self.settings.lingma_max_message_bytes)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.serve, name=f"{self.name} reader pid={self.pid}")
            connection, self.handshake = await handshake(self.dialect, client, str(self.workdir),
                                                         timeout=self.settings.start_timeout)
            if not self.handshake.logged_in:
                await self._wait_for_login(client, self.handshake.auth_status)
            self.client, self.connection = client, connection
            self.life += 1
            self._set_state(InstanceState.READY)
            on_ready()
            await self._probe_forever(connection)
            nursery.cancel_scope.cancel()

    async def _wait_for_login(self, client: LingmaClient, auth: object) -> None:
        """UNHEALTHY, with the reason, until ``auth/status`` says logged in (checked each probe)."""
        while not logged_in(auth):
            self.last_error = not_logged_in_reason(auth)
            log.error("%s: %s", self.name, self.last_error)
            self._set_state(InstanceState.UNHEALTHY)
            await trio.sleep(self.settings.ping_interval)
            auth = await client.call("auth/status", timeout=self.settings.ping_timeout)
        self.last_error = None
        assert self.handshake is not None  # set by the handshake that found us logged out
        self.handshake = attrs.evolve(self.handshake, logged_in=True, auth_status=auth)

    async def _probe_forever(self, connection: Connection) -> None:
        """Ping on an interval; UNHEALTHY after one failure, restart after several in a row.

        A probe that times out while the runtime kept sending (a long answer streaming) is a
        success: the runtime is alive, only busy, and its ``ping`` answer waits behind its pushes.
        """
        failures = 0
        while True:
            await trio.sleep(self.settings.ping_interval)
            began = trio.current_time()
            try:
                await connection.ping(timeout=self.settings.ping_timeout)
                ok = True
            except UpstreamTimeout:
                ok = connection.client.last_received > began
                if not ok:
                    self.probe_failures += 1
                    self.last_error = "health probe failed: no answer and nothing received"
            except UpstreamError as exc:
                ok = False
                self.probe_failures += 1
                self.last_error = f"health probe failed: {exc.message}"
            verdict = after_probe(self.state, ok=ok, failures=failures,
                                  failures_to_restart=self.settings.probe_failures)
            failures = verdict.failures
            self._set_state(verdict.state)
            if verdict.restart:
                raise InstanceDied(f"{failures} health probes failed in a row")

    async def _send_polite_exit(self, transport: Transport) -> None:
        """Ask the runtime to exit (LSP ``shutdown`` + ``exit``), shielded and bounded."""
        peer = jsonrpc.Peer(first_id=1_000_000)
        with shielded_cleanup(1.0):
            try:
                await transport.send(peer.send_request("shutdown")[1])
                await transport.send(peer.send_notification("exit"))
                self._polite_exit_sent = True
            except TransportClosed:
                pass


async def _wait_ready_line(log_file: Path, offset: int, process: Child) -> int:
    """Poll the runtime's log for the readiness line written after ``offset``; its WS port."""
    while True:
        if process.returncode is not None:
            raise InstanceDied(f"process exited with code {process.returncode} before it was ready")
        try:
            with log_file.open("rb") as fh:
                fh.seek(offset)
                match = READY_LINE.search(fh.read())
        except FileNotFoundError:
            match = None
        if match:
            return int(match.group(1))
        await trio.sleep(0.05)


def _describe(group: BaseExceptionGroup[BaseException]) -> str:
    parts = []
    for exc in _leaves(group):
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        parts.append(f"{type(exc).__name__}: {message}")
    return "; ".join(parts)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]
