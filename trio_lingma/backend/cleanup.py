"""Clean-up that must happen even while its caller is being cancelled (style.md §5).

Stopping a turn upstream, deleting a session, closing a WebSocket, asking a runtime to exit:
each runs shielded from the caller's cancellation *and* bounded by its own deadline, so a
client that went away still stops Lingma generating, and a frozen peer can never hang
shutdown. trio's ``CancelScope`` does both in one scope: ``shield`` blocks cancellation from
outside, while its own ``deadline`` still applies.
"""

from __future__ import annotations

import trio

__all__ = ["CLEANUP_TIMEOUT", "shielded_cleanup"]

#: How long clean-up calls to Lingma (chat/stop, deleting a session) may take, shielded.
CLEANUP_TIMEOUT = 2.0


def shielded_cleanup(timeout: float = CLEANUP_TIMEOUT) -> trio.CancelScope:
    """A scope immune to outer cancellation that gives up by itself after ``timeout`` seconds."""
    return trio.CancelScope(shield=True, deadline=trio.current_time() + timeout)
