"""Settings: one frozen attrs object built from the environment (and an optional .env file).

Every field names its environment variable in its metadata; ``.env.example`` is the
authoritative, commented list and a test keeps the two in step. Values are parsed and validated
at start with errors that name the variable and the accepted values.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .aliases import parse_aliases

__all__ = ["ConfigError", "Settings", "is_loopback", "load_dotenv"]


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use; the message names the variable."""


def _env(name: str, help: str) -> dict[str, str]:
    return {"env": name, "help": help}


def _f(default: Any, env: str, help: str) -> Any:
    return attrs.field(default=default, metadata=_env(env, help))


DEFAULT_ARGV = "{binary} start --workDir {workdir} --socketPort {socket_port} --httpPort {http_port}"


@attrs.frozen(kw_only=True)
class Settings:
    """All knobs of the gateway; see .env.example for the meaning of each."""

    host: str = _f("127.0.0.1", "HOST", "address to listen on")
    port: int = _f(8317, "PORT", "TCP port to listen on")
    api_keys: tuple[str, ...] = _f((), "API_KEYS", "comma-separated accepted API keys")
    allow_open: bool = _f(False, "ALLOW_OPEN", "allow no API keys on a non-loopback address")
    lingma_binary: str = _f("", "LINGMA_BINARY", "Lingma binary; auto = find it; empty = built-in simulator")
    lingma_argv: str = _f(DEFAULT_ARGV, "LINGMA_ARGV", "argv template to start the binary")
    lingma_work_root: str = _f("data/instances", "LINGMA_WORK_ROOT", "root of per-instance workdirs")
    lingma_dialect: str = _f("legacy", "LINGMA_DIALECT", "protocol family: legacy, acp or auto")
    lingma_attach: bool = _f(False, "LINGMA_ATTACH", "connect to a running runtime instead of starting one")
    lingma_ws_url: str = _f("", "LINGMA_WS_URL", "attach: runtime WebSocket URL; empty = discovery file")
    lingma_ipc_socket: str = _f("", "LINGMA_IPC_SOCKET", "attach: the runtime's unix socket; empty = discovery file")
    lingma_shared_client_info: str = _f("", "LINGMA_SHARED_CLIENT_INFO", "attach: path of the .info(.json) file")
    lingma_data_dir: str = _f("", "LINGMA_DATA_DIR", "logged-in Lingma data dir (read-only source)")
    lingma_install_dir: str = _f("data/lingma", "LINGMA_INSTALL_DIR", "where LINGMA_ARCHIVE is installed")
    lingma_archive: str = _f("", "LINGMA_ARCHIVE", "Lingma archive (tar.gz/zip path or URL) to install")
    lingma_archive_sha256: str = _f("", "LINGMA_ARCHIVE_SHA256", "expected sha256 of LINGMA_ARCHIVE")
    lingma_instances: int = _f(1, "LINGMA_INSTANCES", "number of Lingma instances")
    lingma_concurrency: int = _f(4, "LINGMA_CONCURRENCY", "concurrent requests per instance")
    lingma_mode: str = _f("chat", "LINGMA_MODE", "chat/ask mode: chat or agent")
    model_aliases: tuple[str, ...] = _f((), "MODEL_ALIASES", "pattern=model entries: client model names to serve")
    tool_bridge: str = _f("bridge", "TOOL_BRIDGE", "Lingma-executed tool calls: bridge, text or off")
    lingma_max_message_bytes: int = _f(16 * 1024 * 1024, "LINGMA_MAX_MESSAGE_BYTES",
                                       "largest JSON-RPC message sent to a runtime (bigger requests get 413)")
    start_timeout: float = _f(30.0, "LINGMA_START_TIMEOUT", "seconds to wait for readiness")
    restart_initial: float = _f(0.5, "LINGMA_RESTART_INITIAL", "first restart delay (s)")
    restart_max: float = _f(30.0, "LINGMA_RESTART_MAX", "largest restart delay (s)")
    ping_interval: float = _f(10.0, "LINGMA_PING_INTERVAL", "seconds between health probes")
    ping_timeout: float = _f(5.0, "LINGMA_PING_TIMEOUT", "seconds a probe may take")
    stop_grace: float = _f(3.0, "LINGMA_STOP_GRACE", "seconds between SIGTERM and SIGKILL")
    probe_failures: int = _f(3, "LINGMA_PROBE_FAILURES", "failed probes in a row that restart an instance")
    queue_size: int = _f(64, "QUEUE_SIZE", "requests that may wait for capacity; more get 429")
    queue_timeout: float = _f(30.0, "QUEUE_TIMEOUT", "seconds a request may wait for capacity (then 503)")
    per_key_concurrency: int = _f(0, "PER_KEY_CONCURRENCY", "concurrent requests per API key; 0 = no limit")
    session_cache_size: int = _f(256, "SESSION_CACHE_SIZE", "idle upstream sessions kept for reuse; 0 = off")
    session_ttl: float = _f(1800.0, "SESSION_TTL", "seconds an idle upstream session is kept")
    responses_store_size: int = _f(256, "RESPONSES_STORE_SIZE",
                                   "Responses API responses kept for previous_response_id and GET; 0 = off")
    first_token_timeout: float = _f(120.0, "FIRST_TOKEN_TIMEOUT", "seconds to the first event")
    idle_timeout: float = _f(120.0, "IDLE_TIMEOUT", "max seconds between upstream events")
    request_timeout: float = _f(1800.0, "REQUEST_TIMEOUT", "max seconds for a whole request")
    drain_timeout: float = _f(30.0, "DRAIN_TIMEOUT", "seconds open requests get to finish on shutdown")
    max_body_bytes: int = _f(32 * 1024 * 1024, "MAX_BODY_BYTES", "largest accepted request body")
    body_timeout: float = _f(60.0, "BODY_TIMEOUT", "seconds a client may take to send its body")
    sse_ping_interval: float = _f(15.0, "SSE_PING_INTERVAL", "seconds of upstream silence before a keep-alive")
    keep_alive_timeout: int = _f(15, "KEEP_ALIVE_TIMEOUT", "whole seconds an idle client connection is kept open")
    send_timeout: float = _f(60.0, "SEND_TIMEOUT", "seconds a client may leave a response unread before it is dropped")
    max_connections: int = _f(0, "MAX_CONNECTIONS", "client connections served at once; 0 = from the open-file limit")
    log_level: str = _f("INFO", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = _f("plain", "LOG_FORMAT", "plain or json")
    access_log: bool = _f(True, "ACCESS_LOG", "one INFO line per request")
    admin_key: str = _f("", "ADMIN_KEY", "key for /admin/*, /debug/tasks; empty disables them")
    metrics_require_admin: bool = _f(False, "METRICS_REQUIRE_ADMIN", "require ADMIN_KEY for /metrics")

    @property
    def uses_simulator(self) -> bool:
        """Spawning the built-in simulator (no LINGMA_BINARY, not attaching to a runtime)."""
        return not self.lingma_binary and not self.lingma_attach

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            name = field.metadata["env"]
            if name in environ and environ[name] != "":
                values[field.name] = _parse(name, environ[name], field.default)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the variable on any unusable value."""
        _require(1 <= self.port <= 65535 or self.port == 0, "PORT", "0..65535")
        _require(self.lingma_instances >= 1, "LINGMA_INSTANCES", "an integer >= 1")
        _require(self.lingma_concurrency >= 1, "LINGMA_CONCURRENCY", "an integer >= 1")
        _require(self.probe_failures >= 1, "LINGMA_PROBE_FAILURES", "an integer >= 1")
        _require(self.queue_size >= 0, "QUEUE_SIZE", "an integer >= 0")
        _require(self.per_key_concurrency >= 0, "PER_KEY_CONCURRENCY", "an integer >= 0")
        _require(self.session_cache_size >= 0, "SESSION_CACHE_SIZE", "an integer >= 0")
        _require(self.responses_store_size >= 0, "RESPONSES_STORE_SIZE", "an integer >= 0")
        _require(self.max_connections >= 0, "MAX_CONNECTIONS", "an integer >= 0")
        _require(self.keep_alive_timeout >= 1, "KEEP_ALIVE_TIMEOUT", "a whole number of seconds >= 1")
        _require(self.lingma_mode in ("chat", "agent"), "LINGMA_MODE", "chat or agent")
        _require(self.log_format in ("plain", "json"), "LOG_FORMAT", "plain or json")
        _require(self.tool_bridge in ("bridge", "text", "off"), "TOOL_BRIDGE", "bridge, text or off")
        _require(self.lingma_dialect in ("legacy", "acp", "auto"), "LINGMA_DIALECT", "legacy, acp or auto")
        _require(not self.lingma_ws_url or self.lingma_ws_url.startswith(("ws://", "wss://")),
                 "LINGMA_WS_URL", "empty or a ws:// or wss:// URL")
        _require(not (self.lingma_ws_url and self.lingma_ipc_socket), "LINGMA_IPC_SOCKET",
                 "empty when LINGMA_WS_URL is set (one way to reach the runtime)")
        sha = self.lingma_archive_sha256
        _require(not self.lingma_archive or (len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)),
                 "LINGMA_ARCHIVE_SHA256", "the 64 hex digits of LINGMA_ARCHIVE's sha256 when LINGMA_ARCHIVE is set")
        try:
            parse_aliases(self.model_aliases)
        except ValueError as exc:
            raise ConfigError(f"MODEL_ALIASES: must be comma-separated pattern=model entries ({exc})") from None
        _require(self.max_body_bytes >= 1024, "MAX_BODY_BYTES", "an integer >= 1024")
        _require(self.lingma_max_message_bytes >= 4096, "LINGMA_MAX_MESSAGE_BYTES", "an integer >= 4096")
        _require("{workdir}" in self.lingma_argv, "LINGMA_ARGV", "a template containing {workdir}")
        _require(self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "LOG_LEVEL",
                 "DEBUG, INFO, WARNING or ERROR")
        for name in ("start_timeout", "ping_interval", "ping_timeout", "first_token_timeout",
                     "idle_timeout", "request_timeout", "drain_timeout", "body_timeout", "sse_ping_interval",
                     "restart_initial", "queue_timeout", "session_ttl", "send_timeout"):
            env = attrs.fields_dict(type(self))[name].metadata["env"]
            _require(getattr(self, name) > 0, env, "a number of seconds > 0")
        _require(self.stop_grace >= 0, "LINGMA_STOP_GRACE", "a number of seconds >= 0")
        _require(self.restart_max >= self.restart_initial, "LINGMA_RESTART_MAX",
                 "a number of seconds >= LINGMA_RESTART_INITIAL")
        if not self.api_keys and not self.allow_open and not is_loopback(self.host):
            raise ConfigError(
                f"HOST={self.host} is not a loopback address and API_KEYS is empty: set API_KEYS, "
                "or set ALLOW_OPEN=true to run an open gateway on purpose"
            )

    def masked(self) -> dict[str, Any]:
        """Every setting by variable name, with secrets masked (for check-config and logs)."""
        out = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if field.name == "api_keys":
                value = ",".join(_mask(k) for k in value)
            elif field.name == "admin_key" and value:
                value = _mask(value)
            out[field.metadata["env"]] = value
        return out


def _require(ok: bool, name: str, accepted: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: must be {accepted}")


def _mask(key: str) -> str:
    # A short key would be given away by its first characters: show none of it.
    return key[:3] + "…" if len(key) >= 12 else "…"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 maybe in brackets) is a loopback address."""
    host = host.lower().removeprefix("[").removesuffix("]")  # "[::1]" as written in URLs
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # a dual-stack listener ([::]) sees IPv4 clients as ::ffff:a.b.c.d
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def _parse(name: str, raw: str, default: Any) -> Any:
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        kind = type(default).__name__ if not isinstance(default, bool) else "true/false"
        raise ConfigError(f"{name}: cannot read {raw!r} as {kind}") from None


def load_dotenv(path: str | os.PathLike[str] = ".env") -> dict[str, str]:
    """Read ``KEY=VALUE`` lines of a .env file (no expansion); variables already set win."""
    file = Path(path)
    if not file.is_file():
        return {}
    values = {}
    for line in file.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = _dotenv_value(value.strip())
    return {k: v for k, v in values.items() if k not in os.environ}


def _dotenv_value(value: str) -> str:
    """A quoted value loses one pair of quotes; an unquoted one its `` #`` comment."""
    if value[:1] in ("'", '"') and (end := value.find(value[0], 1)) > 0:
        return value[1:end]
    if value.startswith("#"):
        return ""
    return value.split(" #", 1)[0].rstrip()
