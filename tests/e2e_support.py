"""Start real gateway processes (with real simulator subprocesses) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import httpx

API_KEY = "sk-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class RunningGateway:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def readyz(self) -> httpx.Response:
        return httpx.get(f"{self.url}/readyz", timeout=5)

    def wait_ready(self, timeout: float = 30.0) -> dict:
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
    """Run ``trio-lingma serve`` (or ``argv``) on an ephemeral loopback port until the block ends."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
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
        **(env or {}),
    }
    command = list(argv) if argv else [sys.executable, "-m", "trio_lingma", "serve"]
    command = [c.format(port=port) for c in command]
    log_path = tmp / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=full_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    gateway = RunningGateway(url=f"http://127.0.0.1:{port}", process=process, workdir=tmp, log_path=log_path)
    try:
        if wait:
            gateway.wait_ready()
        yield gateway
    finally:
        stop(gateway)


def stop(gateway: RunningGateway, timeout: float = 15.0) -> int:
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        try:
            gateway.process.wait(timeout)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait()
            raise
    return gateway.process.returncode


def simulator_pids(workroot: Path) -> list[int]:
    """PIDs of simulator processes whose command line mentions ``workroot``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "trio_lingma.simulator" in cmdline and str(workroot) in cmdline:
            pids.append(int(entry.name))
    return pids
