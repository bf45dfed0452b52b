"""No container engine runs in CI: check Containerfile and compose.yaml statically, against each
other and against the settings and the code they start."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import attrs
import yaml

from trio_lingma.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {f.metadata["env"] for f in attrs.fields(Settings)}


def _containerfile() -> str:
    return (ROOT / "Containerfile").read_text()


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["trio-lingma"]


def _env_lines() -> dict[str, str]:
    text = _containerfile().replace("\\\n", " ")
    (env,) = re.findall(r"^ENV (.+)$", text, flags=re.M)
    return dict(item.split("=", 1) for item in shlex.split(env))


def test_ports_agree() -> None:
    port = str(Settings().port)
    assert re.search(rf"^EXPOSE {port}$", _containerfile(), flags=re.M)
    assert _env_lines()["PORT"] == port
    assert _compose()["ports"] == [f"{port}:{port}"]
    assert _compose()["environment"]["PORT"] == port


def test_environment_names_are_real_settings() -> None:
    assert set(_env_lines()) - {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR"} <= SETTING_NAMES
    assert set(_compose()["environment"]) <= SETTING_NAMES


def test_workdir_lives_on_the_data_volume() -> None:
    volumes = dict(v.split(":", 1) for v in _compose()["volumes"])
    assert volumes["./data"] == "/app/data"
    assert volumes["./secrets"] == "/secrets:ro"
    assert _env_lines()["LINGMA_WORK_ROOT"].startswith("/app/data/")
    assert _compose()["environment"]["LINGMA_WORK_ROOT"] == _env_lines()["LINGMA_WORK_ROOT"]
    assert _compose()["env_file"] == ".env"


def test_the_command_exists_and_binds_the_port() -> None:
    (cmd,) = re.findall(r"^CMD (.+)$", _containerfile(), flags=re.M)
    assert "--worker-class trio" in cmd and '0.0.0.0:${PORT}' in cmd
    module, attr = re.search(r"(trio_lingma[\w.]*):(\w+)", cmd).groups()
    assert callable(getattr(importlib.import_module(module), attr))
    assert "trio-lingma bootstrap &&" in cmd  # the bootstrap step runs first, and exists:
    from trio_lingma.cli import main

    assert main(["--env-file", "/nonexistent", "bootstrap"]) == 0


def test_healthchecks_probe_readyz_on_the_port() -> None:
    assert "/readyz" in _containerfile().split("HEALTHCHECK", 1)[1]
    test = " ".join(_compose()["healthcheck"]["test"])
    assert f"127.0.0.1:{Settings().port}/readyz" in test


def test_stop_grace_outlasts_the_drain() -> None:
    graceful = int(re.search(r"--graceful-timeout (\d+)", _containerfile()).group(1))
    grace = int(_compose()["stop_grace_period"].rstrip("s"))
    assert grace > graceful and grace > Settings().drain_timeout


def test_image_runs_as_non_root() -> None:
    users = re.findall(r"^USER (\S+)$", _containerfile(), flags=re.M)
    assert users and users[-1] not in ("root", "0")
