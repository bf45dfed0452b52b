"""Start real gateway processes (with real simulator subprocesses) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx

from trio_lingma.testing import free_port, simulator_pids, stop_process

__all__ = ["ACP_VARIANTS", "ADMIN_KEY", "API_KEY", "ATTACHED", "VARIANTS", "RunningGateway", "free_port", "run_gateway", "run_variant",
           "run_simulator", "simulator_pids", "stop", "wait_for"]

API_KEY = "sk-test-key"
#: Every test gateway has an admin key (unless a test sets its own), so ``readyz()`` shows detail.
ADMIN_KEY = "sk-test-admin-key"
NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


@attrs.define
class RunningGateway:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    variant: str = "legacy"
    admin_key: str = ADMIN_KEY
    #: A client for this gateway: a new connection per request, like ``httpx.get``, without
    #: building an SSL context (about 40 ms of CPU) per call.
    http: httpx.Client = attrs.field(factory=lambda: httpx.Client(limits=NO_KEEPALIVE), repr=False)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def readyz(self) -> httpx.Response:
        """``/readyz`` with the admin key: the pool's detail, not only ready/not ready."""
        headers = {"Authorization": f"Bearer {self.admin_key}"} if self.admin_key else {}
        return self.http.get(f"{self.url}/readyz", headers=headers, timeout=5)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = self.readyz()
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"gateway not ready after {timeout} s:\n{self.log()}")


@contextmanager
def run_gateway(
    tmp: Path, *, env: dict[str, str] | None = None, argv: Sequence[str] | None = None,
    wait: bool = True,
) -> Iterator[RunningGateway]:
    """Run ``trio-lingma serve`` (or ``argv``) on an ephemeral loopback port until the block ends.

    The port was free when :func:`free_port` asked, but any process may take it before the
    gateway binds it (outgoing connections draw from the same ephemeral range): a gateway that
    exits with EADDRINUSE is started again on another port, twice at most."""
    tmp.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        gateway = _start_gateway(tmp, env, argv)
        try:
            if wait:
                gateway.wait_ready()
            break
        except RuntimeError:  # the gateway exited
            stop(gateway)
            gateway.http.close()
            if attempt == 2 or "[Errno 98] Address already in use" not in gateway.log():
                raise
        except BaseException:
            stop(gateway)
            gateway.http.close()
            raise
    try:
        yield gateway
    finally:
        try:
            stop(gateway)
        finally:
            gateway.http.close()


def _start_gateway(tmp: Path, env: dict[str, str] | None, argv: Sequence[str] | None) -> RunningGateway:
    port = free_port()
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "API_KEYS": API_KEY,
        "LINGMA_WORK_ROOT": str(tmp / "instances"),
        "LINGMA_RESTART_INITIAL": "0.2",
        "LINGMA_RESTART_MAX": "2",
        "LINGMA_PING_INTERVAL": "1",
        "LINGMA_PING_TIMEOUT": "1",
        "LOG_LEVEL": "INFO",
        "ADMIN_KEY": ADMIN_KEY,
        **(env or {}),
    }
    command = list(argv) if argv else [sys.executable, "-m", "trio_lingma", "serve"]
    command = [c.format(port=port) for c in command]
    log_path = tmp / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=full_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    return RunningGateway(url=f"http://127.0.0.1:{port}", process=process, workdir=tmp, log_path=log_path,
                          admin_key=full_env["ADMIN_KEY"])


def stop(gateway: RunningGateway, timeout: float = 15.0) -> int:
    """Stop the gateway; one that ignored SIGTERM for ``timeout`` is killed and fails the test."""
    if gateway.process.poll() is not None:  # already ended (a test killed it on purpose)
        return gateway.process.returncode
    code = stop_process(gateway.process, timeout)
    assert code != -signal.SIGKILL, f"the gateway ignored SIGTERM for {timeout} s:\n{gateway.log()}"
    return code


#: The runtimes every wire-API end-to-end suite runs against: the simulator spawned by the
#: gateway in each dialect, an already running simulator the gateway attaches to, and the
#: simulator playing what real desktop runtimes were seen doing (``--profile realistic-acp``),
#: spawned (over its WebSocket) and attached to over its unix socket (``ipcServerPath``).
VARIANTS = ("legacy", "acp", "attach", "realistic-ws", "realistic-ipc")
#: Variants whose runtime the gateway did not start (``/readyz`` says ``simulator: false``).
ATTACHED = frozenset({"attach", "realistic-ipc"})
#: Variants whose runtime speaks ACP (tool calls Lingma ran report its output, not a refusal).
ACP_VARIANTS = frozenset({"acp", "realistic-ws", "realistic-ipc"})
ACP_ARGV = "{binary} start --dialect acp --workDir {workdir} --socketPort {socket_port} --httpPort {http_port}"
REALISTIC_ARGV = ("{binary} start --profile realistic-acp --workDir {workdir} --socketPort {socket_port} "
                  "--httpPort {http_port}")
#: The realistic profile's message limit; the gateway is told, so big requests get 413.
REALISTIC_LIMIT = str(1024 * 1024)


@contextmanager
def run_simulator(workdir: Path, *extra: str) -> Iterator[str]:
    """A standalone simulator process (as an IDE would have running); yields its ws URL (its
    discovery file is ``workdir/SharedClientCache/.info.json``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "trio_lingma.simulator", "start", *extra,
               "--workDir", str(workdir), "--socketPort", "0", "--httpPort", "0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = workdir / "logs" / "lingma.log"
    try:
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not an expectation
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Communication servers ready - WebSocket: " in text:
                port = text.split("Communication servers ready - WebSocket: ", 1)[1].split(",", 1)[0]
                yield f"ws://127.0.0.1:{int(port)}/"
                return
            time.sleep(0.05)
        raise TimeoutError("the standalone simulator did not become ready")
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def run_variant(tmp: Path, variant: str, *, env: dict[str, str] | None = None) -> Iterator[RunningGateway]:
    """``run_gateway`` against one of :data:`VARIANTS`."""
    env = dict(env or {})
    if variant == "legacy":
        with run_gateway(tmp, env=env) as gateway:
            yield gateway
    elif variant == "acp":
        env.update(LINGMA_DIALECT="acp", LINGMA_ARGV=ACP_ARGV)
        with run_gateway(tmp, env=env) as gateway:
            yield gateway
    elif variant == "attach":
        with run_simulator(tmp / "ide-runtime") as ws_url:
            env.update(LINGMA_ATTACH="true", LINGMA_WS_URL=ws_url)
            with run_gateway(tmp, env=env) as gateway:
                yield gateway
    elif variant == "realistic-ws":
        env.setdefault("LINGMA_MAX_MESSAGE_BYTES", REALISTIC_LIMIT)
        env.update(LINGMA_DIALECT="acp", LINGMA_ARGV=REALISTIC_ARGV)
        with run_gateway(tmp, env=env) as gateway:
            yield gateway
    elif variant == "realistic-ipc":
        ide = tmp / "ide-runtime"
        with run_simulator(ide, "--profile", "realistic-acp"):
            info = ide / "SharedClientCache" / ".info.json"
            env.setdefault("LINGMA_MAX_MESSAGE_BYTES", REALISTIC_LIMIT)
            env.update(LINGMA_ATTACH="true", LINGMA_SHARED_CLIENT_INFO=str(info), LINGMA_DIALECT="acp")
            with run_gateway(tmp, env=env) as gateway:
                assert "attaching to the runtime at unix:" in gateway.log(), gateway.log()
                yield gateway
    else:
        raise ValueError(variant)


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")
