""".env.example is the authoritative list of settings: it must match Settings exactly."""

from __future__ import annotations

from pathlib import Path

import attrs

from trio_lingma.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_every_setting_is_documented_and_nothing_else() -> None:
    names = {f.metadata["env"] for f in attrs.fields(Settings)}
    assert set(_example()) == names


def test_documented_values_are_the_defaults() -> None:
    assert Settings.from_env(_example()) == Settings()
