"""CI runs exactly README's test command, and what that command needs is in the ``test`` extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    (command,) = re.findall(r"^Run the tests:\n\n```sh\n(.+)\n```", (ROOT / "README.md").read_text(), flags=re.M)
    return command


def test_ci_runs_readmes_test_command() -> None:
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == _readme_test_command()


def test_the_test_extra_provides_the_commands_plugins() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0] for spec in extra}
    command = _readme_test_command()
    assert "pytest" in names
    if " -n " in command or "--dist" in command:
        assert "pytest-xdist" in names
