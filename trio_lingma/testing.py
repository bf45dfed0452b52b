"""Process helpers shared by the end-to-end tests and the tools (bench, chaos): loopback ports
(also the supervisor's, for its runtimes) and the simulator processes a gateway left behind.
Linux ``/proc`` only; stdlib only."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

__all__ = ["free_port", "simulator_pids", "stop_process", "zombies_of"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago (for ephemeral test servers)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _stat_fields(entry: Path) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: [state, ppid, ...]."""
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()


def simulator_pids(workroot: Path) -> list[int]:
    """PIDs of live (non-zombie) simulator processes whose command line mentions ``workroot``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = _stat_fields(entry)[0]
        except (OSError, IndexError):
            continue
        if "trio_lingma.simulator" in cmdline and str(workroot) in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def zombies_of(pid: int) -> list[int]:
    """Children of ``pid`` that exited and were never waited for."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code (negative when killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
