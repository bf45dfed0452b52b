"""The real Claude Code CLI (pinned, from npm) against a real gateway and simulator.

Claude Code is run as a user runs it: ``claude -p`` in its default configuration (its whole
default tool set, no ``--bare``), pointed at the gateway by ``ANTHROPIC_BASE_URL``. The
simulator plays a model that calls a tool only when the newest user message asks for it, so a
prompt such as "Use the Bash tool to run: echo ..." makes a real round trip: the gateway turns
the simulated call into a ``tool_use`` block, Claude Code runs Bash itself and sends the
``tool_result`` back, and the final answer quotes the command's output.
"""

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


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    # claude-* aliases: Claude Code may also run unconfigured (its own claude-opus/haiku names)
    with run_gateway(tmp_path_factory.mktemp("claude-code"), env={"MODEL_ALIASES": "claude-*=qwen3-coder"}) as gateway:
        yield gateway


def _claude(gw: RunningGateway, home: Path, prompt: str, *extra: str, model: str | None = "qwen3-coder") -> str:
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_API_KEY": API_KEY,
        # no traffic to anyone but the gateway: CI has no network beyond the package registries
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
    }
    if model:
        env["ANTHROPIC_MODEL"] = model
    done = subprocess.run([str(client_bin("claude")), "-p", prompt, *extra], env=env, cwd=home,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"claude exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{gw.log()[-3000:]}"
    return done.stdout


def _last_json(text: str) -> dict[str, Any]:
    line = [line for line in text.splitlines() if line.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def test_claude_code_answers_a_plain_prompt(gw: RunningGateway, tmp_path: Path) -> None:
    result = _last_json(_claude(gw, tmp_path / "home", "hello there", "--output-format", "json"))
    assert (result["is_error"], result["num_turns"]) == (False, 1)
    assert result["result"] == "Echo: hello there"
    assert result["usage"]["input_tokens"] > 1000  # its system prompt and tool list reached the model


def test_claude_code_without_a_model_setting_through_model_aliases(gw: RunningGateway, tmp_path: Path) -> None:
    result = _last_json(_claude(gw, tmp_path / "home", "hello there", "--output-format", "json", model=None))
    assert (result["is_error"], result["result"]) == (False, "Echo: hello there")
    # It asked for (and was answered under) its own default model: the gateway echoes the name.
    assert [name for name in result["modelUsage"] if name.startswith("claude-")], result["modelUsage"]


def test_claude_code_tool_round_trip_json(gw: RunningGateway, tmp_path: Path) -> None:
    prompt = "Use the Bash tool to run: echo round-trip-json"
    result = _last_json(_claude(gw, tmp_path / "home", prompt, "--output-format", "json"))
    assert result["is_error"] is False and result["num_turns"] == 2
    assert result["result"] == "The tool returned: round-trip-json"


def test_claude_code_tool_round_trip_stream_json(gw: RunningGateway, tmp_path: Path) -> None:
    prompt = "Use the Bash tool to run: echo round-trip-stream"
    out = _claude(gw, tmp_path / "home", prompt, "--output-format", "stream-json", "--verbose")
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    uses = [block for m in messages if m.get("type") == "assistant"
            for block in m["message"]["content"] if block["type"] == "tool_use"]
    assert [(u["name"], u["input"]["command"]) for u in uses] == [("Bash", "echo round-trip-stream")]
    results = [block for m in messages if m.get("type") == "user"
               for block in m["message"]["content"] if isinstance(block, dict) and block.get("type") == "tool_result"]
    assert [r["tool_use_id"] for r in results] == [uses[0]["id"]]
    assert "round-trip-stream" in json.dumps(results[0]["content"])
    final = messages[-1]
    assert final["type"] == "result" and final["result"] == "The tool returned: round-trip-stream"


def test_claude_code_subagent_round_trip(gw: RunningGateway, tmp_path: Path) -> None:
    # The Agent tool runs a subagent (its own requests: another tool set, a system message listing
    # deferred tools); its completion comes back as a notification turn that the gateway sends
    # into the reused upstream session. Every request must be answered without an API error.
    out = _claude(gw, tmp_path / "home", "Use the Agent tool: say hi", "--output-format", "stream-json",
                  "--verbose", model=None)
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    blocks = [block for m in messages if m.get("type") == "assistant" for block in m["message"]["content"]]
    assert [(b["name"], b["input"]["prompt"]) for b in blocks if b["type"] == "tool_use"] == [("Agent", "say hi")]
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    assert "Echo: say hi" in texts, texts  # the subagent's own answer
    assert not [t for t in texts if "API Error" in t], texts
    assert all(m["is_error"] is False for m in messages if m.get("type") == "result")
