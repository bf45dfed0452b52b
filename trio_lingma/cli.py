"""The ``trio-lingma`` command: ``serve``, ``simulate``, ``tasks``, ``status``, ``drain``, ``bootstrap``,
``check-config``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import trio

from .observability.logs import configure_logging
from .settings import ConfigError, Settings, load_dotenv

__all__ = ["main", "serve"]

log = logging.getLogger("trio_lingma")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    return Settings.from_env({**load_dotenv(args.env_file), **os.environ}, **overrides)


async def serve(settings: Settings, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Run hypercorn with the app inside our own root nursery until SIGINT/SIGTERM."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    from .http.app import create_app

    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None  # ours is trio_lingma.access (ACCESS_LOG)
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler only, not twice
    config.graceful_timeout = 5.0
    config.keep_alive_timeout = settings.keep_alive_timeout
    # hypercorn's accept backlog is 100: a burst of new connections overflows it and the kernel
    # drops SYNs (clients retry after 1 s, 3 s, ...). 2048, like uvicorn and gunicorn.
    config.backlog = 2048
    app = create_app(settings)
    gateway = app.extensions["trio_lingma.gateway"]
    shutdown = trio.Event()

    async def watch_signals() -> None:
        """First SIGINT/SIGTERM: drain (up to DRAIN_TIMEOUT), then stop; a second: stop now."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.warning("received %s: draining for up to %.0f s (send it again to stop at once)",
                            signal.Signals(signum).name, settings.drain_timeout)
                break
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_next_signal, signals, nursery.cancel_scope,
                                   name="second signal watcher")
                await gateway.drain(settings.drain_timeout)
                nursery.cancel_scope.cancel()
        shutdown.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals, name="signal watcher")
        binds = await nursery.start(_run_hypercorn, hypercorn_serve, app, config, shutdown, name="hypercorn")
        log.info("trio-lingma listening on %s", ", ".join(binds))
        task_status.started(settings.port)
        await shutdown.wait()
        # hypercorn finishes by itself once shutdown is set
    log.info("trio-lingma stopped")


async def _cancel_on_next_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("received %s again: stopping now", signal.Signals(signum).name)
        scope.cancel()
        return


async def _run_hypercorn(hypercorn_serve: Callable[..., Awaitable[None]], app: object, config: object,
                         shutdown: trio.Event, *,
                         task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """``nursery.start`` takes no keyword arguments: this passes hypercorn's."""
    await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    trio.run(serve, settings)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulator.cli import main as simulator_main

    return int(simulator_main(args.simulator_args) or 0)


def _admin_get(args: argparse.Namespace, path: str, method: str = "GET") -> bytes:
    """Call an admin endpoint of a running gateway (stdlib only: the CLI has no HTTP client dep)."""
    import urllib.error
    import urllib.request

    settings = _settings(args)
    url = (args.url or f"http://127.0.0.1:{settings.port}").rstrip("/") + path
    req = urllib.request.Request(url, method=method,
                                 headers={"Authorization": f"Bearer {settings.admin_key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"trio-lingma: {url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"trio-lingma: cannot reach {url}: {exc.reason}") from None


def _cmd_tasks(args: argparse.Namespace) -> int:
    sys.stdout.write(_admin_get(args, "/debug/tasks" + ("?format=json" if args.json else "")).decode())
    return 0


def _cmd_drain(args: argparse.Namespace) -> int:
    print(json.loads(_admin_get(args, "/admin/drain", method="POST"))["message"])
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(json.loads(_admin_get(args, "/admin/status")), indent=2))
    return 0


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    from .bootstrap import main as bootstrap_main

    return bootstrap_main(["--env-file", args.env_file])


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(json.dumps(settings.masked(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trio-lingma", description=__doc__)
    parser.add_argument("--env-file", default=".env", help="optional .env file (default: ./.env)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the gateway")
    p_serve.add_argument("--host", help="override HOST")
    p_serve.add_argument("--port", type=int, help="override PORT")
    p_serve.set_defaults(func=_cmd_serve)
    p_sim = sub.add_parser("simulate", help="run the Lingma simulator standalone")
    p_sim.add_argument("simulator_args", nargs=argparse.REMAINDER)
    p_sim.set_defaults(func=_cmd_simulate)
    for name, func, text in (("tasks", _cmd_tasks, "print the task tree of a running gateway"),
                             ("status", _cmd_status, "print the pool snapshot of a running gateway"),
                             ("drain", _cmd_drain, "drain a running gateway, then stop it")):
        p = sub.add_parser(name, help=text + " (needs ADMIN_KEY)")
        p.add_argument("--url", help="gateway base URL (default: http://127.0.0.1:$PORT)")
        if name == "tasks":
            p.add_argument("--json", action="store_true", help="JSON instead of text")
        p.set_defaults(func=func)
    p_boot = sub.add_parser("bootstrap", help="find/install the Lingma binary, prepare instance workdirs")
    p_boot.set_defaults(func=_cmd_bootstrap)
    p_check = sub.add_parser("check-config", help="print the effective settings (secrets masked)")
    p_check.set_defaults(func=_cmd_check_config)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"trio-lingma: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
