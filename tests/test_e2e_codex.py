"""End to end: the real Codex CLI (pinned, from npm) against a real gateway + simulator over
``wire_api = "responses"``, configured the way README documents (a ``config.toml`` in
``CODEX_HOME`` naming the gateway as a model provider). Skipped only when npm is absent."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .e2e_support import API_KEY, RunningGateway, run_gateway
from .real_clients import client_bin

# first under xdist: a fresh machine installs the pinned npm clients in the first of these tests
pytestmark = pytest.mark.slow

CONFIG = """\
model = "qwen3-coder"
model_provider = "lingma"

[model_providers.lingma]
name = "trio-lingma"
base_url = "{base_url}"
env_key = "LINGMA_API_KEY"
wire_api = "responses"
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    env = {"SSE_PING_INTERVAL": "5", "MODEL_ALIASES": "gpt-*=qwen3-coder"}
    with run_gateway(tmp_path_factory.mktemp("codex"), env=env) as gateway:
        yield gateway


def codex_exec(gw: RunningGateway, tmp_path: Path, prompt: str, *options: str) -> list[dict[str, Any]]:
    """Run ``codex exec --json`` in a fresh CODEX_HOME; its JSONL events (must exit 0)."""
    codex = client_bin("codex")
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(CONFIG.format(base_url=gw.base_url))
    env = {**os.environ, "CODEX_HOME": str(home), "LINGMA_API_KEY": API_KEY}
    done = subprocess.run([str(codex), "exec", "--json", "--skip-git-repo-check", "-C", str(work), *options, prompt],
                          env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, f"codex failed:\n{done.stdout}\n{done.stderr}\n{gw.log()[-3000:]}"
    assert not [e for e in events if e["type"] in ("turn.failed", "error")], done.stdout
    return events


def _completed(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


@pytest.mark.parametrize("model", [(), ("-c", "model=gpt-5.1-codex")], ids=["configured", "aliased"])
def test_codex_exec_completes_a_prompt(gw: RunningGateway, tmp_path: Path, model: tuple[str, ...]) -> None:
    events = codex_exec(gw, tmp_path, "hello from codex", *model)
    messages = _completed(events, "agent_message")
    assert messages and messages[-1]["text"]
    turn = next(e for e in events if e["type"] == "turn.completed")
    assert turn["usage"]["input_tokens"] > 0 and turn["usage"]["output_tokens"] > 0


def test_codex_runs_a_shell_tool_round_trip(gw: RunningGateway, tmp_path: Path) -> None:
    events = codex_exec(gw, tmp_path, "[sim call tool=exec_command] echo hi")
    commands = _completed(events, "command_execution")
    assert len(commands) == 1 and commands[0]["command"]
    # the command's output went back as a function_call_output, and the model answered from it
    assert _completed(events, "agent_message")[-1]["text"].startswith("The tool returned:")


def test_codex_shows_thinking_as_reasoning(gw: RunningGateway, tmp_path: Path) -> None:
    events = codex_exec(gw, tmp_path, "[sim think] why", "-c", "model=qwen3-thinking",
                        "-c", "model_reasoning_effort=high")
    reasoning = _completed(events, "reasoning")
    assert reasoning and reasoning[0]["text"].startswith("Thinking about")
    turn = next(e for e in events if e["type"] == "turn.completed")
    assert turn["usage"]["reasoning_output_tokens"] > 0
