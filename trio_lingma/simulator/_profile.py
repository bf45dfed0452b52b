"""Simulator profiles: bundles of behaviour seen on real runtimes (``--profile``).

Theory of operation
-------------------
The default simulator follows the protocol reference's blueprint (lingma-protocol.md §8). Public
captures of real desktop runtimes (§11; DESIGN.md "What real runtimes do") differ from it in
ways a gateway must survive, so ``--profile realistic-acp`` plays all of them at once:

* ``prompt_ack``: ``session/prompt`` is answered at once with an empty result while the answer
  still streams; only ``chat_finish`` (with an empty ``fullAnswer``) ends the turn [obs OC];
* ``steps_first``: ``chat/process_step_callback`` ``step_start`` *and* ``step_end`` come before
  the first answer chunk, followed by ``snapshot/syncAll`` and ``session/title/update`` [obs OC];
* ``side_pushes``: ``session/update`` ``available_commands_update`` right after
  ``session/new`` [obs OC], and a ``plan`` update before an agent turn's first tool call
  [obs WE, in session replays; its place in a live turn is a guess];
* ``strict_params``: params must be a JSON object, as the Go runtime decodes them into a struct
  (``json: cannot unmarshal array into Go value of type struct {}``) [obs OC], and a prompt
  without ``_meta["ai-coding/request-id"]`` fails with ``requestId is empty`` [obs OC];
* ``ipc``: it also listens on a unix socket named in ``.info.json``'s ``ipcServerPath``, which
  clients prefer [obs OC, WE];
* ``max_message_bytes``: a message over 1 MiB closes the connection (WebSocket 1009; on the
  socket, the stream) — trio-websocket's default, the limit that broke big prompts [impl];
* ``server_name`` ``lingma`` 0.7.1 [obs OC]; ``protocol_versions``: only ``initialize``
  ``protocolVersion`` 1 is accepted, so a client must fall back from 2 as WE's does [guess].

Tool activity is reported as ``tool_call``/``tool_call_update`` updates in every ACP profile
(``_acp.py``). This module is pure data.
"""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT", "PROFILES", "Profile"]


@attrs.frozen(kw_only=True)
class Profile:
    """What a profile changes; the defaults are the blueprint simulator."""

    name: str = "default"
    #: The dialect it forces (None: ``--dialect`` decides).
    dialect: str | None = None
    prompt_ack: bool = False
    steps_first: bool = False
    side_pushes: bool = False
    strict_params: bool = False
    ipc: bool = False
    #: Largest message accepted (None: ``--maxMessageBytes`` decides).
    max_message_bytes: int | None = None
    server_name: str = "Lingma"
    server_version: str | None = None
    #: ``initialize`` ``protocolVersion`` values accepted (ACP).
    protocol_versions: tuple[int, ...] = (1, 2)


DEFAULT = Profile()

PROFILES: dict[str, Profile] = {
    "default": DEFAULT,
    "realistic-acp": Profile(
        name="realistic-acp", dialect="acp", prompt_ack=True, steps_first=True, side_pushes=True,
        strict_params=True, ipc=True, max_message_bytes=1024 * 1024, server_name="lingma",
        server_version="0.7.1", protocol_versions=(1,),
    ),
}
