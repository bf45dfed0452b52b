"""Suite-wide settings.

Under CI (``CI=true``) hypothesis runs derandomized: the same examples every run, so a submission
is judged on its code, not on the luck of a random search. Locally it searches afresh each run,
which is how new counterexamples are found (and then pinned as explicit tests).

With pytest-xdist (README's test command runs ``-n 4 --dist loadgroup``) most of the suite's
wall time is waiting for gateway and runtime processes, so several workers overlap it. The tests
sharing a module-scoped fixture (a gateway with its runtimes, one per parameter) form one work
unit, so each such fixture is set up once; every other test is a unit of its own. xdist's own
``loadgroup`` learns groups from a suffix it appends to node ids, which pytest 9.2's structured
node ids no longer allow (pytest-xdist issue 1386), so the workers hand their groups to the
controller's scheduler (:func:`pytest_xdist_make_scheduler`) in a file instead. Units run
longest first: tests marked ``slow``, then groups by size, then the rest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_GROUPS = "trio_lingma_groups"  # workerinput key: where the workers write {nodeid: group}
_GROUPS_DIR = pytest.StashKey[Path]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, per worker: where to write the test groups."""
    if _GROUPS_DIR not in node.config.stash:
        node.config.stash[_GROUPS_DIR] = Path(tempfile.mkdtemp(prefix="xdist-groups-"))
    node.workerinput[_GROUPS] = str(node.config.stash[_GROUPS_DIR] / "groups.json")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _GROUPS_DIR in config.stash:
        shutil.rmtree(config.stash[_GROUPS_DIR], ignore_errors=True)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup``: units from the groups the workers wrote, in their collection order."""
    if config.getvalue("dist") != "loadgroup" or _GROUPS_DIR not in config.stash:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(config, log)
            self.groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first called once every worker has collected
                self.groups = json.loads((config.stash[_GROUPS_DIR] / "groups.json").read_text())
            return self.groups.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # the workers' collection order is already longest first
    return SharedFixtureScheduling()


@pytest.hookimpl(trylast=True)  # after pytest grouped the items by their fixtures' parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """xdist worker: order the items longest unit first and write every item's group."""
    path = getattr(config, "workerinput", {}).get(_GROUPS)
    if not path:
        return
    groups = {item.nodeid: _shared_fixture_key(item) for item in items}
    size: dict[str, int] = {}
    for group in groups.values():
        size[group] = size.get(group, 0) + 1
    # a stable sort: a group's items stay in the order pytest chose for its fixtures
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, -size[groups[item.nodeid]] if groups[item.nodeid] else 0))
    if config.workerinput["workerid"] == "gw0":  # every worker collects the same items
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps({nodeid: group for nodeid, group in groups.items() if group}))
        tmp.replace(path)


def _shared_fixture_key(item: pytest.Item) -> str:
    """``module:param...`` for a test using module-scoped fixtures (their parameters tell one
    set-up from another), ``""`` for one that uses none."""
    info = getattr(item, "_fixtureinfo", None)
    shared = [name for name, defs in info.name2fixturedefs.items() if defs and defs[-1].scope == "module"] if info else []
    if not shared:
        return ""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return ":".join([item.path.stem, *(str(params[name]) for name in sorted(shared) if name in params)])
