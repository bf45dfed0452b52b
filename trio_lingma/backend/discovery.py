"""Find a Lingma runtime that is already running (attach mode; lingma-protocol.md §1.4, §1.5).

Theory of operation
-------------------
Rules, in order:

1. ``LINGMA_WS_URL`` set → that URL, nothing else is looked at; ``LINGMA_IPC_SOCKET`` set →
   that unix socket (setting both is a configuration error).
2. ``LINGMA_SHARED_CLIENT_INFO`` set → that file must exist and parse (an error names the
   variable otherwise; we never silently fall back to another runtime).
3. Otherwise the first file that exists among the SharedClientCache files LP's
   ``resolveSharedClientInfo()`` reads: for each base directory — the OS user config dir,
   ``~/.qodercn/vscode``, ``~/.qodercn``, ``~/.lingma/vscode``, ``~/.lingma``, ``%APPDATA%``,
   ``%LOCALAPPDATA%``, ``%ProgramData%`` — first ``<base>/{QoderCN,Qoder,Lingma}/`` then
   ``<base>/`` itself, each with ``SharedClientCache`` then ``sharedClientCache``, each with
   ``.info.json`` then ``.info``. QoderCN is therefore preferred when both run (pitfall 6).

Two formats exist: JSON ``{"websocketPort":36510,"pid":14060,"ipcServerPath":"...","isDev":false}``
and the legacy plain text, one value per line (port, pid, pipe path). The result is the
WebSocket URL ``ws://127.0.0.1:<port>/`` (path ``/``, no auth), the pid, and the IPC socket
when ``ipcServerPath`` names one this platform can open (a unix socket path; Windows named
pipes such as ``lingma-bf0f32``, are out of scope): the desktop prefers IPC (OC), and so does attach
mode, falling back to the WebSocket when the socket refuses. A file with neither a usable
port nor a usable socket is refused. A stale file (the runtime has exited) still parses;
connecting then fails, and the caller retries with backoff, discovering again each time. Pure
file reading, no sockets.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..settings import ConfigError, Settings

__all__ = [
    "DiscoveryError",
    "RuntimeEndpoint",
    "candidate_info_files",
    "discover_from_settings",
    "discover_runtime",
    "is_unix_socket_path",
    "parse_info",
    "read_info_file",
]

PRODUCTS = ("QoderCN", "Qoder", "Lingma")
CACHE_DIRS = ("SharedClientCache", "sharedClientCache")
INFO_FILES = (".info.json", ".info")


class DiscoveryError(ConfigError):
    """No usable runtime was found; the message names the variable to set."""


@attrs.frozen(kw_only=True)
class RuntimeEndpoint:
    """Where a running runtime listens, and where we learned it."""

    ws_url: str = ""
    pid: int | None = None
    #: A unix socket to speak the same framing over (empty: WebSocket only).
    ipc_path: str = ""
    source: str = ""

    @property
    def address(self) -> str:
        """Where it listens, for logs: the socket first (it is tried first), then the URL."""
        return " or ".join(part for part in (f"unix:{self.ipc_path}" if self.ipc_path else "", self.ws_url) if part)


def is_unix_socket_path(path: str) -> bool:
    """An ``ipcServerPath`` this gateway can open: a unix socket path, not a Windows pipe."""
    return bool(path) and not path.startswith("\\")


def _user_config_dir(home: Path, environ: Mapping[str, str], platform: str) -> Path | None:
    """Go's ``os.UserConfigDir()``, which LP uses."""
    if platform.startswith("win"):
        appdata = environ.get("APPDATA")
        return Path(appdata) if appdata else None
    if platform == "darwin":
        return home / "Library" / "Application Support"
    xdg = environ.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg else home / ".config"


def _bases(home: Path, environ: Mapping[str, str], platform: str) -> list[Path]:
    bases = [_user_config_dir(home, environ, platform), home / ".qodercn" / "vscode", home / ".qodercn",
             home / ".lingma" / "vscode", home / ".lingma"]
    bases += [Path(environ[name]) for name in ("APPDATA", "LOCALAPPDATA", "ProgramData") if environ.get(name)]
    unique: list[Path] = []
    for base in bases:
        if base is not None and base not in unique:
            unique.append(base)
    return unique


def candidate_info_files(home: Path, environ: Mapping[str, str], platform: str = sys.platform) -> list[Path]:
    """Every discovery file path, in search order (see the module docstring)."""
    paths: list[Path] = []
    for base in _bases(home, environ, platform):
        for parent in [base / product for product in PRODUCTS] + [base]:
            paths += [parent / cache / name for cache in CACHE_DIRS for name in INFO_FILES]
    return paths


def parse_info(text: str, *, is_json: bool) -> tuple[int | None, int | None, str]:
    """``(websocket port, pid, ipc path)`` from a discovery file's text; ValueError if unusable
    (neither a port nor a unix socket; the port is None when only a socket is offered)."""
    if is_json:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        port, pid, ipc = data.get("websocketPort"), data.get("pid"), data.get("ipcServerPath")
    else:
        lines = [line.strip() for line in text.splitlines()]
        port, pid, ipc = (lines + ["", "", ""])[:3]
    port_number, ipc_path = _integer(port), str(ipc or "")
    if port_number is None or not 0 < port_number < 65536:
        if is_unix_socket_path(ipc_path):
            return None, _integer(pid), ipc_path
        raise ValueError(f"no usable websocketPort ({port!r}) and no unix socket (ipcServerPath {ipc!r}; "
                         "Windows named pipes are not supported)")
    return port_number, _integer(pid), ipc_path


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def read_info_file(path: Path, *, variable: str) -> RuntimeEndpoint:
    """Parse one discovery file; DiscoveryError names ``variable`` and the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        port, pid, ipc = parse_info(text, is_json=path.name.endswith(".json"))
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"{variable}: cannot use the discovery file {path}: {exc}") from None
    return RuntimeEndpoint(ws_url=f"ws://127.0.0.1:{port}/" if port else "", pid=pid,
                           ipc_path=ipc if is_unix_socket_path(ipc) else "", source=str(path))


def discover_runtime(
    *,
    ws_url: str = "",
    ipc_socket: str = "",
    info_file: str = "",
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
) -> RuntimeEndpoint:
    """Where the running runtime listens: ``LINGMA_WS_URL``, ``LINGMA_IPC_SOCKET``,
    ``LINGMA_SHARED_CLIENT_INFO``, or a search.

    ``ws_url``, ``ipc_socket`` and ``info_file`` are the settings of those names;
    ``home``/``environ`` default to the real ones (tests pass temporary ones).
    """
    if ws_url and ipc_socket:
        raise DiscoveryError("LINGMA_WS_URL and LINGMA_IPC_SOCKET: set one of them, not both")
    if ws_url:
        if not ws_url.startswith(("ws://", "wss://")):
            raise DiscoveryError(f"LINGMA_WS_URL: must be a ws:// or wss:// URL, not {ws_url!r}")
        return RuntimeEndpoint(ws_url=ws_url, source="LINGMA_WS_URL")
    if ipc_socket:
        if not is_unix_socket_path(ipc_socket):
            raise DiscoveryError(f"LINGMA_IPC_SOCKET: must be a unix socket path, not {ipc_socket!r}")
        return RuntimeEndpoint(ipc_path=ipc_socket, source="LINGMA_IPC_SOCKET")
    if info_file:
        return read_info_file(Path(info_file).expanduser(), variable="LINGMA_SHARED_CLIENT_INFO")
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    candidates = candidate_info_files(home, environ, platform)
    for path in candidates:
        if path.is_file():
            return read_info_file(path, variable="LINGMA_SHARED_CLIENT_INFO (or LINGMA_WS_URL)")
    raise DiscoveryError(
        f"no running Lingma runtime found: none of {len(candidates)} SharedClientCache discovery files "
        f"exists (first: {candidates[0]}); start your IDE's Lingma, or set LINGMA_WS_URL, "
        "LINGMA_IPC_SOCKET or LINGMA_SHARED_CLIENT_INFO"
    )


def discover_from_settings(settings: Settings) -> RuntimeEndpoint:
    """:func:`discover_runtime` with ``LINGMA_WS_URL``, ``LINGMA_IPC_SOCKET`` and
    ``LINGMA_SHARED_CLIENT_INFO`` from settings."""
    return discover_runtime(ws_url=settings.lingma_ws_url, ipc_socket=settings.lingma_ipc_socket,
                            info_file=settings.lingma_shared_client_info)
