"""Shared by bench.py and chaos.py: a gateway process, worker processes, statistics.

Everything runs on 127.0.0.1 with ephemeral ports. A gateway is ``python -m trio_lingma
serve`` with the given settings; its instances are the built-in simulator (zero artificial
delay unless a prompt's ``[sim ...]`` directive asks for one). Stdlib only (plus the package).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from trio_lingma.testing import free_port, stop_process
from trio_lingma.testing import simulator_pids as simulator_pids  # re-exported for bench/chaos
from trio_lingma.testing import zombies_of as zombies_of

T = TypeVar("T")

TOOLS = Path(__file__).resolve().parent
API_KEY = "sk-bench"
ADMIN_KEY = "admin-bench"
HOST = "127.0.0.1"


class Gateway:
    """A running ``trio-lingma serve`` process."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
        self.process = process
        self.port = port
        self.workdir = workdir
        self.url = f"http://{HOST}:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def get(self, path: str, *, admin: bool = False, timeout: float = 5) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if admin else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def readyz(self) -> dict[str, Any]:
        return self.get("/readyz", admin=True)[1]

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text(errors="replace")


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (/proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_env(workdir: Path, port: int, settings: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "HOST": HOST, "PORT": str(port), "API_KEYS": API_KEY,
           "ADMIN_KEY": ADMIN_KEY, "LINGMA_WORK_ROOT": str(workdir / "instances"),
           "LOG_LEVEL": "WARNING", "LINGMA_RESTART_INITIAL": "0.2", "LINGMA_RESTART_MAX": "2"}
    env.update(settings)
    return env


@contextmanager
def run_gateway(workdir: Path, settings: dict[str, str], start_timeout: float = 60) -> Iterator[Gateway]:
    """Start a gateway, wait until every instance is READY, stop it (SIGTERM) at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (workdir / "gateway.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "trio_lingma", "serve"], cwd=workdir,
                                   env=gateway_env(workdir, port, settings), stdout=log,
                                   stderr=subprocess.STDOUT)
    gateway = Gateway(process, port, workdir)
    try:
        _wait_ready(gateway, int(settings.get("LINGMA_INSTANCES", "1")), start_timeout)
        yield gateway
    finally:
        stop_gateway(gateway)


def _wait_ready(gateway: Gateway, instances: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{gateway.log()[-3000:]}")
        try:
            ready = gateway.readyz()
            if sum(i["state"] == "ready" for i in ready["instances"]) == instances:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"gateway not ready after {timeout} s:\n{gateway.log()[-3000:]}")


def stop_gateway(gateway: Gateway, timeout: float = 20) -> int:
    return stop_process(gateway.process, timeout)


def worker(script: str, command: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``tools/<script> <command>`` with ``spec`` on stdin; return its JSON output."""
    done = subprocess.run([sys.executable, str(TOOLS / script), command], timeout=timeout,
                          input=json.dumps(spec).encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{script} {command} failed:\n{done.stderr.decode()[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def parallel_workers(script: str, command: str, specs: Sequence[dict[str, Any]],
                     timeout: float) -> list[dict[str, Any]]:
    """Like :func:`worker` for several processes at once (each its own event loop and CPU)."""
    procs = [subprocess.Popen([sys.executable, str(TOOLS / script), command],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in specs]
    for proc, spec in zip(procs, specs, strict=False):
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} {command} failed:\n{err.decode()[-3000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99 in milliseconds."""
    return {f"p{q}": _ms(percentile(values, q)) for q in (50, 90, 99)}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def in_workdir(args: argparse.Namespace, prefix: str, run: Callable[[Path], T]) -> T:
    """``run(workdir)``: ``--workdir`` (kept), or a temporary directory removed afterwards."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=prefix))
    try:
        return run(workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def report_checks(summary: dict[str, Any], json_path: str | None) -> int:
    """Print ``summary["checks"]``, write the summary as JSON if asked; the exit code."""
    for check in summary["checks"]:
        print(f"[{'ok' if check['ok'] else 'FAIL'}] {check['check']}: {check['detail']}")
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1
