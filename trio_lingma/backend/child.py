"""A runtime process that dies with the gateway, even when the gateway is SIGKILLed.

Theory of operation
-------------------
The runtime runs in its own session (``start_new_session``) so that a terminal's Ctrl-C reaches
only the gateway, which then stops it in order (LSP ``exit``, SIGTERM, grace, SIGKILL). But a
gateway that is SIGKILLed (or crashes hard) runs no clean-up at all, and the runtime would live
on as an orphan holding its ports. On Linux the child therefore asks the kernel for a *parent
death signal*: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set between ``fork`` and ``exec`` (it
survives ``exec``), followed by a check that the parent did not already die in between.

Two details decide how the process is started:

* The kernel sends the signal when the *thread* that forked the child exits, not the process.
  ``trio.run_process`` forks in a cached worker thread (``trio.to_thread``) that exits after
  10 s idle — the runtime would be killed 10 s after every start. So :func:`spawn` forks on the
  calling thread: the trio thread, which lives exactly as long as the gateway.
* ``prctl`` has no ``subprocess`` keyword, so it runs in a ``preexec_fn``. That makes CPython
  ``fork`` instead of ``vfork`` (a few ms blocking the event loop, only when a runtime starts)
  and runs Python code in the child before ``exec``; the function does nothing but call the
  ``prctl`` symbol resolved *before* the fork and compare ``getppid()``, so it takes no lock the
  fork could have left held. (``setpriv --pdeathsig`` would avoid the ``preexec_fn`` but depends
  on util-linux being installed and cannot check for the race.)

Elsewhere (no ``prctl``) the child is started the same way without it. :class:`Child` is the
small async face of the ``Popen`` that the supervisor needs (wait, terminate, kill), waiting on
a pidfd as trio does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import trio

__all__ = ["Child", "spawn"]

PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when this thread ends (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the gateway died before the prctl: nobody to live for
            os._exit(1)

    return set_in_child


class Child:
    """A started runtime process (the parts of ``trio.Process`` the supervisor uses)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid

    def __repr__(self) -> str:
        return f"<Child pid={self.pid} returncode={self.returncode}>"

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def terminate(self) -> None:
        self._popen.terminate()

    def kill(self) -> None:
        self._popen.kill()

    async def wait(self) -> int:
        """Wait for the exit without blocking trio (a pidfd on Linux, else a thread)."""
        if self.returncode is not None:
            return self._popen.returncode
        if not hasattr(os, "pidfd_open"):
            return await trio.to_thread.run_sync(self._popen.wait, abandon_on_cancel=True)
        fd = os.pidfd_open(self.pid)
        try:
            await trio.lowlevel.wait_readable(fd)
        finally:
            os.close(fd)
        return self._popen.wait()  # it exited: this only reaps it


def spawn(argv: Sequence[str], *, env: Mapping[str, str], stdin: int | IO[Any] | None = subprocess.DEVNULL,
          stdout: int | IO[Any] | None = subprocess.DEVNULL) -> Child:
    """Start ``argv`` on this thread, in its own session, killed by the kernel if we die."""
    popen = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, env=dict(env),
                             start_new_session=True, preexec_fn=_parent_death_signal())
    return Child(popen)
