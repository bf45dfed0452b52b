"""A runtime that is not logged in is an unhealthy instance with its reason visible, not a
ready one that fails every request."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .e2e_support import run_gateway

ARGV = "{binary} start --authStatus 1 --workDir {workdir} --socketPort {socket_port} --httpPort {http_port}"


def test_not_logged_in_instance_is_unhealthy_with_its_reason(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"LINGMA_ARGV": ARGV, "LINGMA_START_TIMEOUT": "3"}, wait=False) as gw:
        deadline = time.monotonic() + 20
        while True:
            try:
                readyz = gw.readyz()
                instance = readyz.json()["instances"][0]
                if instance["state"] == "unhealthy":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, gw.log()
            time.sleep(0.1)
        assert readyz.status_code == 503
        assert "not logged in (auth/status 1 NOT_LOGIN)" in instance["last_error"]
        assert "LINGMA_DATA_DIR" in instance["last_error"]
        chat = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "hi"}]}
        response = gw.http.post(f"{gw.base_url}/chat/completions", json=chat, headers=gw.headers(), timeout=10)
        assert response.status_code == 503
        assert 'trio_lingma_instance_logged_in{instance="0"} 0.0' in gw.http.get(f"{gw.url}/metrics").text
        assert "not logged in" in gw.log()
