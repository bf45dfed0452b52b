"""Operator endpoints against a real gateway process."""

from __future__ import annotations

from pathlib import Path

from .e2e_support import run_gateway, wait_for


def test_metrics_usage_status_and_task_tree(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"ADMIN_KEY": "admin-secret-key"}) as gw:
        chat = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "count me"}]}
        assert gw.http.post(f"{gw.base_url}/chat/completions", json=chat, headers=gw.headers()).status_code == 200
        admin = {"Authorization": "Bearer admin-secret-key"}
        metrics = gw.http.get(f"{gw.url}/metrics").text
        assert 'trio_lingma_requests_total{protocol="openai",route="/v1/chat/completions",status="200"} 1.0' in metrics
        assert 'trio_lingma_in_flight{instance="0"} 0.0' in metrics
        assert 'trio_lingma_instance_state{instance="0",state="ready"} 1.0' in metrics
        assert gw.http.get(f"{gw.url}/debug/tasks", headers=gw.headers()).status_code == 403
        tree = gw.http.get(f"{gw.url}/debug/tasks", headers=admin).text
        for name in ("lingma[0] supervisor", "lingma[0] process", "lingma[0] reader", "lingma[0] writer"):
            assert name in tree, tree
        tree_json = gw.http.get(f"{gw.url}/debug/tasks?format=json", headers=admin).json()
        assert tree_json["name"] and tree_json["children"]
        status = gw.http.get(f"{gw.url}/admin/status", headers=admin).json()
        assert status["instances"][0]["state"] == "ready"
        usage = gw.http.get(f"{gw.url}/admin/usage", headers=admin).json()
        assert "sk-test-key" not in str(usage)
        model = usage["models"]["qwen3-coder"]
        assert model["requests"] == 1 and model["errors"] == 0
        assert model["input_tokens"] > 0 and model["output_tokens"] > 0
        (key,) = usage["keys"].values()
        assert key == model
        metrics = gw.http.get(f"{gw.url}/metrics").text
        assert f'trio_lingma_tokens_total{{direction="output",model="qwen3-coder"}} {float(model["output_tokens"])}' in metrics
        assert "trio_lingma_time_to_first_token_seconds_count" in metrics
        assert "trio_lingma_queue_wait_seconds_count 1.0" in metrics


def test_cli_tasks_and_status_against_a_running_gateway(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    with run_gateway(tmp_path, env={"ADMIN_KEY": "admin-secret-key"}) as gw:
        env = {"ADMIN_KEY": "admin-secret-key", "PATH": "/usr/bin:/bin"}
        run = [sys.executable, "-m", "trio_lingma", "--env-file", "/nonexistent"]
        tree = subprocess.run([*run, "tasks", "--url", gw.url], env=env, capture_output=True, text=True,
                              check=True, timeout=30).stdout
        for name in ("lingma[0] supervisor", "lingma[0] process", "lingma[0] reader"):
            assert name in tree
        status = subprocess.run([*run, "status", "--url", gw.url], env=env, capture_output=True, text=True,
                                check=True, timeout=30).stdout
        assert json.loads(status)["instances"][0]["state"] == "ready"
        denied = subprocess.run([*run, "tasks", "--url", gw.url], env={"PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=30)
        assert denied.returncode != 0 and "403" in denied.stderr


def test_check_config_masks_secrets() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "trio_lingma", "--env-file", "/nonexistent", "check-config"],
                         env={"API_KEYS": "sk-very-secret-key-123", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert "sk-very-secret-key-123" not in out and '"PORT": 8317' in out


def test_sigusr1_logs_the_task_tree(tmp_path: Path) -> None:
    import os
    import signal
    import time

    with run_gateway(tmp_path) as gw:
        os.kill(gw.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "lingma[0] reader" not in gw.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "task tree (SIGUSR1)" in gw.log() and "lingma[0] supervisor" in gw.log()


def test_json_logs_carry_the_request_id_and_no_secrets(tmp_path: Path) -> None:
    import json

    with run_gateway(tmp_path, env={"LOG_FORMAT": "json"}) as gw:
        chat = {"model": "qwen3-coder", "messages": [{"role": "user", "content": "[sim error status=500] secret prompt"}]}
        response = gw.http.post(f"{gw.base_url}/chat/completions", json=chat,
                              headers={**gw.headers(), "x-request-id": "trace-abc.123"}, timeout=30)
        assert response.headers["x-request-id"] == "trace-abc.123"
        evil = gw.http.get(f"{gw.url}/healthz", headers={"x-request-id": "bad id <script>"})
        assert evil.headers["x-request-id"].startswith("req_")
        log = gw.log()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "request_id", "message"} <= set(r) for r in records)
    assert "secret prompt" not in log and "sk-test-key" not in log


def test_metrics_during_a_stream_show_it_in_flight(tmp_path: Path) -> None:
    import threading

    with run_gateway(tmp_path) as gw:
        body = {"model": "qwen3-coder", "stream": True,
                "messages": [{"role": "user", "content": "[sim slow delay=0.2] " + "m" * 40}]}
        started = threading.Event()

        def stream() -> None:
            with gw.http.stream("POST", f"{gw.base_url}/chat/completions", json=body, headers=gw.headers(),
                              timeout=30) as response:
                for _ in response.iter_lines():
                    started.set()

        thread = threading.Thread(target=stream, name="stream")
        thread.start()
        assert started.wait(10)
        during = gw.http.get(f"{gw.url}/metrics").text
        thread.join(30)
        def settled() -> str | None:  # the turn's clean-up runs just after the last byte
            text = gw.http.get(f"{gw.url}/metrics").text
            return text if 'trio_lingma_in_flight{instance="0"} 0.0' in text else None

        after = wait_for(settled)
    assert 'trio_lingma_in_flight{instance="0"} 1.0' in during
    assert 'trio_lingma_in_flight{instance="0"} 0.0' in after
    assert 'trio_lingma_requests_total{protocol="openai",route="/v1/chat/completions",status="200"} 1.0' in after
