"""Static checks run with the suite, so README's test command (and CI) enforces them: ruff
with the rule set in pyproject.toml over the package, the tests and the tools; mypy --strict
on the package (its cache in .mypy_cache makes a re-run take seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "trio_lingma", "tests", "tools"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict() -> None:
    """``[tool.mypy] strict = true`` on the package (pyproject.toml), with no errors."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
