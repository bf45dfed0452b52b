"""Pinned real agent clients (Claude Code, Codex CLI) installed from the npm registry for e2e tests.

The clients are judged as users run them, so the tests install the exact published packages
rather than replaying requests we guessed. They go under ``.clients/`` at the repository root
(git-ignored) on first use; a test that needs one is skipped only when ``npm`` is absent from the
machine. A failed install is an error, not a skip: CI has the npm registry."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["CLIENT_PACKAGES", "client_bin"]

# name of the executable -> pinned npm package spec
CLIENT_PACKAGES = {
    "claude": "@anthropic-ai/claude-code@2.1.332",
    "codex": "@openai/codex@0.171.0",
}

_ROOT = Path(__file__).resolve().parent.parent / ".clients"


def client_bin(name: str) -> Path:
    """The path of the pinned client ``name``, installing all pinned clients once if needed."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: real-client tests need it")
    _ROOT.mkdir(exist_ok=True)
    path = _ROOT / "node_modules" / ".bin" / name
    with open(_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(name):
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(_ROOT),
                 *CLIENT_PACKAGES.values()],
                check=True, capture_output=True, timeout=600,
            )
            (_ROOT / "installed.txt").write_text("\n".join(CLIENT_PACKAGES.values()))
    assert path.exists(), f"npm install did not provide {path}"
    return path


def _installed(name: str) -> bool:
    marker = _ROOT / "installed.txt"
    wanted = "\n".join(CLIENT_PACKAGES.values())
    return (_ROOT / "node_modules" / ".bin" / name).exists() and marker.exists() \
        and marker.read_text() == wanted
