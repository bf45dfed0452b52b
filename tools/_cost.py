"""Cost counters for bench.py: syscalls of a process over a span, and the trivial-route floor.

Syscalls are counted by the kernel's ``raw_syscalls:sys_enter`` tracepoint through
``perf stat -p PID`` (every thread of the process, exact, and cheap enough not to change what
it measures, unlike ptrace-based ``strace -c``). Where perf or the tracepoint is missing the
count is None and the report says so.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent


@contextmanager
def syscalls(pid: int) -> Iterator[dict[str, int | None]]:
    """Count the syscalls ``pid`` makes inside the block: ``result["syscalls"]`` after it."""
    result: dict[str, int | None] = {"syscalls": None}
    perf = shutil.which("perf")
    proc = None
    if perf:
        proc = subprocess.Popen([perf, "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield result
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            result["syscalls"] = _perf_count(err.decode(errors="replace"))


def _perf_count(text: str) -> int | None:
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and "raw_syscalls:sys_enter" in line and fields[0].strip().isdigit():
            return int(fields[0])
    return None


@contextmanager
def floor_server() -> Iterator[tuple[int, int]]:
    """``(pid, port)`` of ``_floor.py``: a trivial quart-trio route under hypercorn."""
    proc = subprocess.Popen([sys.executable, str(TOOLS / "_floor.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = json.loads(proc.stdout.readline())["port"]
        yield proc.pid, port
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def per(total: float | None, count: float, scale: float = 1.0) -> float | None:
    """``total / count * scale`` rounded, None when unknown or nothing was counted."""
    if total is None or not count:
        return None
    return round(total / count * scale, 2)


def ratio(value: Any, base: Any) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)
