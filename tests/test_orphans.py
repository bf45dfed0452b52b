"""A SIGKILLed gateway leaves no runtime behind: each runtime gets the kernel's parent-death
signal (PR_SET_PDEATHSIG, Linux), set so that it outlives trio's idle worker threads."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from .e2e_support import run_gateway, simulator_pids, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")


@pytest.mark.slow
def test_runtimes_die_with_a_sigkilled_gateway(tmp_path: Path) -> None:
    with run_gateway(tmp_path, env={"LINGMA_INSTANCES": "2"}) as gw:
        workroot = tmp_path / "instances"
        pids = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(simulator_pids(workroot)), timeout=30)
        # A parent-death signal follows the *thread* that forked the child: had a trio worker
        # thread forked it, the runtime would die when that thread idles out (10 s).
        time.sleep(11.0)
        assert sorted(simulator_pids(workroot)) == sorted(pids)
        assert "restarting in" not in gw.log()
        os.kill(gw.process.pid, signal.SIGKILL)
        gw.process.wait(timeout=10)
        wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10)


def _alive(pid: int) -> bool:
    """Running (a killed orphan may stay a zombie until the container's init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
