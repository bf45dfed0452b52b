"""Used-then-idle connections: N clients each make one request on a kept-alive connection and
then sit idle; the gateway must close every one after ``KEEP_ALIVE_TIMEOUT`` while ``/healthz``
stays fast (issue 14: before the fix in ``http/served.py`` none was ever closed).

Usage::

    tools/idle_conns.py [--connections 2000] [--keep-alive 5] [--json out.json] [--workdir DIR]

Bounded: connections are opened and used ``--concurrency`` at a time (closed loop: as fast as the
gateway answers, never queueing hundreds of connects ahead of the probes); each then waits for
the gateway's EOF at most ``3 × keep-alive + 10`` s. Pick ``--keep-alive`` longer than the opening
takes, so that every connection is idle at once for a while (the "idle" phase of the report); a
default run takes under a minute. The tool raises its own soft open-file limit to the hard
one (the gateway it starts inherits it) and opens no more connections than that limit allows,
saying so. A prober opens a fresh connection to
``/healthz`` every 100 ms throughout; a sampler counts the gateway's sockets (``/proc``).
With ``--hang-up S`` the clients close their connections themselves S s after the request, and
the gateway's socket count one second after the last close must be back where it started.
Exit status 1 when a connection was left open or a probe failed. Stdlib only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import HOST, cpu_seconds, rss_kib, run_gateway, summary_ms  # noqa: E402

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"  # any request: the connection is then kept alive
PROBE = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-file limit toward ``wanted`` (capped by the hard one); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one ``Content-Length`` response; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                   if k.strip().lower() == "content-length"), 0)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def used_then_idle(port: int, wait: float, opening: asyncio.Semaphore, result: dict[str, list[Any]],
                         hang_up: float | None = None) -> None:
    """One connection: a request, then idle until the gateway closes it (or ``wait`` passes) —
    or, with ``hang_up``, until the client itself closes it that many seconds after the request."""
    async with opening:  # closed-loop pacing: at most --concurrency connections being opened and used
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        except (OSError, TimeoutError) as exc:
            result["connect_errors"].append(repr(exc))
            return
        try:
            writer.write(REQUEST)
            status = await asyncio.wait_for(read_response(reader), 10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            result["request_errors"].append(repr(exc))
            writer.close()
            return
    try:
        result["statuses"].append(status)
        used = time.monotonic()
        result["used_at"].append(used)
        if hang_up is not None:
            await asyncio.sleep(hang_up)
            result["hung_up"].append(1)
            return
        try:
            rest = await asyncio.wait_for(reader.read(), wait)
            result["closed_after"].append(time.monotonic() - used)
            result["closed_at"].append(time.monotonic())
            if rest:
                result["unexpected_bytes"].append(len(rest))
        except TimeoutError:
            result["left_open"].append(1)
    except (OSError, asyncio.IncompleteReadError) as exc:
        result["request_errors"].append(repr(exc))
    finally:
        writer.close()


async def probe(port: int, stop: asyncio.Event, out: dict[str, list[Any]]) -> None:
    """A fresh connection to /healthz every 100 ms: its latency, or its failure."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
            writer.write(PROBE)
            status = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            if status != 200:
                raise OSError(f"status {status}")
            out["probes"].append((started, time.monotonic() - started))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            out["probe_failures"].append(repr(exc))
        await asyncio.sleep(0.1)


async def sample_sockets(pid: int, stop: asyncio.Event, out: dict[str, list[Any]]) -> None:
    """The gateway's open sockets and RSS every 0.5 s."""
    while not stop.is_set():
        out["sockets"].append(count_sockets(pid))
        out["rss_kib"].append(rss_kib(pid))
        await asyncio.sleep(0.5)


def count_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


async def drive(port: int, pid: int, connections: int, concurrency: int, keep_alive: int,
                hang_up: float | None) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [] for k in ("statuses", "used_at", "closed_after", "closed_at", "left_open",
                                                 "connect_errors", "request_errors", "unexpected_bytes", "hung_up",
                                                 "probes", "probe_failures", "sockets", "rss_kib")}
    stop = asyncio.Event()
    side = [asyncio.create_task(probe(port, stop, out)), asyncio.create_task(sample_sockets(pid, stop, out))]
    opening = asyncio.Semaphore(concurrency)
    await asyncio.sleep(1)  # a few probes before
    await asyncio.gather(*(used_then_idle(port, 3 * keep_alive + 10, opening, out, hang_up)
                           for _ in range(connections)))
    await asyncio.sleep(1)  # the gateway's sockets after the last close
    stop.set()
    await asyncio.gather(*side)
    return out


def report(out: dict[str, list[Any]], connections: int, keep_alive: int, sockets_before: int) -> dict[str, Any]:
    closed = out["closed_after"]
    # phases: before any request, opening (until every connection was used), idle (all held, until
    # the first close), closing and after
    first_used = min(out["used_at"], default=0.0)
    all_used = max(out["used_at"], default=0.0)
    first_close = min(out["closed_at"], default=all_used)
    phases = {"before": lambda t: t < first_used, "opening": lambda t: first_used <= t < all_used,
              "idle": lambda t: all_used <= t < first_close, "closing_and_after": lambda t: t >= first_close}
    healthz = {name: _ms_stats([lat for t, lat in out["probes"] if inside(t)]) for name, inside in phases.items()}
    return {
        "connections": connections, "keep_alive_timeout": keep_alive,
        "answered_200": out["statuses"].count(200), "other_status": len(out["statuses"]) - out["statuses"].count(200),
        "closed_by_gateway": len(closed), "closed_by_client": len(out["hung_up"]), "left_open": len(out["left_open"]),
        "connect_errors": out["connect_errors"][:5], "request_errors": out["request_errors"][:5],
        "close_after_s": {k: v if k == "n" or v is None else round(v / 1000, 3) for k, v in _ms_stats(closed).items()},
        "idle_phase_s": round(max(0.0, first_close - all_used), 3),
        "healthz_failures": out["probe_failures"][:5],
        "healthz_ms": healthz,
        "gateway_sockets": {"before": sockets_before, "peak": max(out["sockets"], default=0),
                            "end": out["sockets"][-1] if out["sockets"] else None},
        "gateway_rss_kib": {"peak": max(out["rss_kib"], default=0),
                            "end": out["rss_kib"][-1] if out["rss_kib"] else None},
    }


def _ms_stats(seconds: list[float]) -> dict[str, float | None]:
    return {"n": len(seconds), "min": round(min(seconds) * 1000, 3) if seconds else None, **summary_ms(seconds),
            "max": round(max(seconds) * 1000, 3) if seconds else None}


def out_failed(result: dict[str, Any]) -> bool:
    return bool(result["healthz_failures"] or result["connect_errors"] or result["request_errors"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--keep-alive", type=int, default=15, help="KEEP_ALIVE_TIMEOUT of the gateway (s)")
    parser.add_argument("--concurrency", type=int, default=16, help="connections being opened and used at once")
    parser.add_argument("--hang-up", type=float, metavar="S",
                        help="clients close their idle connection S s after the request (the gateway must "
                             "release it then, not at the keep-alive timeout)")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--workdir", help="gateway workdir (default: a temporary directory)")
    args = parser.parse_args(argv)
    limit = raise_fd_limit(2 * args.connections + 512)  # ours and the gateway's (it inherits it)
    connections = min(args.connections, limit - 300)
    if connections < args.connections:
        print(f"open-file limit {limit}: {connections} connections, not {args.connections}")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="idle-conns-"))
    settings = {"KEEP_ALIVE_TIMEOUT": str(args.keep_alive), "LOG_LEVEL": "WARNING"}
    with run_gateway(workdir, settings) as gw:
        before = count_sockets(gw.pid)
        cpu_before = cpu_seconds(gw.pid)
        out = asyncio.run(drive(gw.port, gw.pid, connections, args.concurrency, args.keep_alive, args.hang_up))
        cpu = cpu_seconds(gw.pid) - cpu_before
    result = report(out, connections, args.keep_alive, before)
    result["gateway_cpu_s"] = round(cpu, 3)
    result["gateway_cpu_ms_per_connection"] = round(cpu * 1000 / max(1, connections), 3)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    closed = result["closed_by_client"] if args.hang_up is not None else result["closed_by_gateway"]
    released = args.hang_up is None or result["gateway_sockets"]["end"] <= result["gateway_sockets"]["before"] + 2
    ok = (result["left_open"] == 0 and not out_failed(result) and released
          and closed == result["answered_200"] == connections)
    print("idle connections: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
