"""CI-sized runs of tools/bench.py, tools/chaos.py and tools/soak.py: they run, print their
figures and their leak checks hold. Timings are never asserted here (the tools print them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def run_tool(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = run_tool([str(TOOLS / "bench.py"), "--quick", "--json", str(out),
                     "--workdir", str(tmp_path / "work")], timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["leaks_ok"], result["leaks"]
    rows = result["latency"]["8"]
    kinds = [row["kind"] for row in rows]
    assert kinds == ["baseline", "openai", "openai-stream", "anthropic", "anthropic-stream"]
    assert all(row["errors"] == 0 and row["ok"] > 0 for row in rows)
    assert result["memory"]["opened"] == result["memory"]["streams"]
    assert "added TTFT" in done.stdout and "leak checks: ok" in done.stdout


@pytest.mark.slow
def test_chaos_small(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    done = run_tool([str(TOOLS / "chaos.py"), "--requests", "150", "--concurrency", "12",
                     "--kill-interval", "1", "--json", str(out),
                     "--workdir", str(tmp_path / "work")], timeout=120)
    summary = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["ok"] and summary["requests"] == 150
    assert {c["check"] for c in summary["checks"] if c["ok"]} >= {
        "in flight 0", "queue 0", "all tickets free", "no orphan simulator processes"}
    # why each request did not succeed, by scenario: hang/error turns end in their error kinds
    assert any(why.startswith(("hang error:", "error error:")) for why in summary["failures"])
    assert "why requests did not succeed" in done.stdout


@pytest.mark.slow
def test_soak_small(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = run_tool([str(TOOLS / "soak.py"), "--requests", "240", "--concurrency", "8", "--cache-size", "16",
                     "--sample", "0.5", "--duration", "60", "--json", str(out),
                     "--workdir", str(tmp_path / "work")], timeout=150)
    summary = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["ok"] and summary["requests"] == 240
    assert summary["statuses"].get("502", 0) > 0  # the [sim error] turns: their sessions are deleted too
