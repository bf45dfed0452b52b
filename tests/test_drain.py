"""Graceful drain of a real `trio-lingma serve` process (with its simulator subprocesses)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .e2e_support import API_KEY, RunningGateway, run_gateway, simulator_pids


def _stream_in_thread(gw: RunningGateway, content: str) -> tuple[threading.Thread, list[str], threading.Event]:
    lines: list[str] = []
    first = threading.Event()
    body = {"model": "qwen3-coder", "stream": True, "messages": [{"role": "user", "content": content}]}

    def run() -> None:
        with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(),
                          timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    lines.append(line)
                    if '"content":"' in line and '"content":""' not in line:
                        first.set()
        first.set()

    thread = threading.Thread(target=run, name="slow stream")
    thread.start()
    return thread, lines, first


@pytest.mark.slow
def test_sigterm_lets_the_stream_finish_refuses_new_work_and_exits_0(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"DRAIN_TIMEOUT": "20"}) as gw:
        thread, lines, first = _stream_in_thread(gw, "[sim slow delay=0.25] " + "q" * 60)
        assert first.wait(10)
        gw.process.send_signal(signal.SIGTERM)
        chat = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "late"}]}
        refused = gw.http.post(f"{gw.base_url}/chat/completions", json=chat, headers=gw.headers(), timeout=10)
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert "shutting down" in refused.json()["error"]["message"]
        assert gw.readyz().status_code == 503 and gw.readyz().json()["draining"] is True
        thread.join(30)
        assert lines[-1] == "data: [DONE]"
        text = "".join(json.loads(line[5:])["choices"][0]["delta"].get("content") or ""
                       for line in lines[:-1] if json.loads(line[5:]).get("choices"))
        assert text == "Echo: " + "q" * 60
        assert gw.process.wait(20) == 0
    assert simulator_pids(tmp_path) == []


def test_drain_timeout_ends_open_streams_with_an_error(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"DRAIN_TIMEOUT": "1"}) as gw:
        thread, lines, first = _stream_in_thread(gw, "[sim hang after=2] stuck forever")
        assert first.wait(10)
        gw.process.send_signal(signal.SIGTERM)
        thread.join(30)
        last = json.loads(lines[-1][5:])
        assert "shutting down" in last["error"]["message"]
        assert gw.process.wait(20) == 0
    assert simulator_pids(tmp_path) == []


def test_cli_drain_stops_a_running_gateway(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"ADMIN_KEY": "admin-key-for-drain"}) as gw:
        out = subprocess.run(
            [sys.executable, "-m", "trio_lingma", "--env-file", "/nonexistent", "drain", "--url", gw.url],
            env={"ADMIN_KEY": "admin-key-for-drain", "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        assert "draining" in out
        assert gw.process.wait(20) == 0
    assert simulator_pids(tmp_path) == []
    assert API_KEY not in gw.log()
