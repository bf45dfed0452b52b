"""Soak: a bounded run of mixed requests, then upstream sessions, RSS and open fds.

    python tools/soak.py                                  # 20,000 requests, at most 300 s
    python tools/soak.py --requests 5000 --duration 120 --json soak.json

Theory of operation
-------------------
A gateway (``trio-lingma serve``) on ``--instances`` simulators serves two load-generator
processes (``_loadgen.py``, one per wire API, each on its own CPU) sending a fixed mix, cycled
per request: a one-shot question, a follow-up of the previous one (a session-cache hit when it
is still cached), the same two streamed, an upstream error (``[sim error]``, its session must be
deleted) and a longer stream. ``SESSION_TTL`` is longer than the run, so every session that is
not cached must have been deleted by the reaper — nothing expires by itself.

A warm-up of ``--warmup`` of the requests runs first; then the gateway's RSS and open fds are
the baseline. During the main run, every ``--sample`` seconds the sessions the simulators hold
(``chat/listAllSessions``) are compared with the gateway's ``cache size + in flight``
(``/admin/status``; in flight counts tickets still paying for a deletion, and queued requests,
which may hold a session checked out of the cache); the sessions deleted while the simulators
were listed are allowed for (the listing is not atomic). At the end, once the
gateway is idle: sessions held must equal the cache size, and RSS/fds are compared with the
baseline. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import trio
from _harness import API_KEY, HOST, TOOLS, Gateway, in_workdir, report_checks, rss_kib, run_gateway
from _wsload import call_each

MODEL = "qwen3-coder"
TURNS = [  # (content of the last user message, history of the previous request?, stream)
    ("soak {n}", False, False),
    ("soak {n}", True, False),
    ("soak {n}", False, True),
    ("soak {n}", True, True),
    ("[sim error status=500] soak {n}", False, False),
    ("[sim long chunks=40] soak {n}", False, True),
]


def body(api: str, text: str, follow_up: bool, stream: bool) -> str:
    messages = [{"role": "user", "content": text}]
    if follow_up:
        messages = [{"role": "user", "content": "soak {prev}"},
                    {"role": "assistant", "content": "Echo: soak {prev}"}, *messages]
    doc: dict[str, Any] = {"model": MODEL, "messages": messages, "stream": stream}
    if api == "anthropic":
        doc["max_tokens"] = 4096
    return json.dumps(doc)


def load_spec(gw: Gateway, api: str, requests: int, concurrency: int, duration: float) -> dict[str, Any]:
    if api == "openai":
        path, headers = "/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}
    else:
        path, headers = "/v1/messages", {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    return {"host": HOST, "port": gw.port, "path": path, "headers": headers, "timeout": 30,
            "requests": requests, "concurrency": concurrency, "duration": duration,
            "bodies": [body(api, *turn) for turn in TURNS]}


Load = list[tuple[subprocess.Popen[bytes], "Future[tuple[bytes, bytes]]"]]


def start_load(specs: list[dict[str, Any]]) -> Load:
    """One ``_loadgen.py`` per spec, its output read by a thread as it writes (a pipe fills up)."""
    procs = [subprocess.Popen([sys.executable, str(TOOLS / "_loadgen.py"), "run"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in specs]
    pool = ThreadPoolExecutor(len(procs))
    outputs = [pool.submit(proc.communicate, json.dumps(spec).encode() + b"\n")
               for proc, spec in zip(procs, specs, strict=True)]
    pool.shutdown(wait=False)  # the threads end with their process
    return list(zip(procs, outputs, strict=True))


def finish_load(load: Load, timeout: float) -> list[list[Any]]:
    samples: list[list[Any]] = []
    for proc, output in load:
        out, err = output.result(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"_loadgen.py failed:\n{err.decode()[-3000:]}")
        samples += json.loads(out.decode().strip().splitlines()[-1])["samples"]
    return samples


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def status(gw: Gateway) -> dict[str, Any]:
    found: dict[str, Any] = gw.get("/admin/status", admin=True)[1]
    return found


Sample = tuple[float, int, int, int, int, int]


def held_upstream(gw: Gateway) -> tuple[int, int, int, int, int]:
    """(sessions the simulators hold, cache size, in flight, deleting, slack), listed between two
    gateway snapshots. The listing is not atomic: a session it saw may have been deleted before
    the second snapshot (then counted nowhere), so the sessions deleted meanwhile are the slack."""
    before = status(gw)
    ports = [i["ws_port"] for i in before["instances"]]
    sessions = trio.run(call_each, ports, "chat/listAllSessions")
    after = status(gw)
    held = sum(len(s) if isinstance(s, list) else 10**6 for s in sessions)
    cache = max(before["cache"]["size"], after["cache"]["size"])
    in_flight = max(_in_flight(before), _in_flight(after))
    slack = after.get("deleted", 0) - before.get("deleted", 0)
    return held, cache, in_flight, after.get("deleting", 0), slack


def _in_flight(snap: dict[str, Any]) -> int:
    """Tickets held, plus queued requests (one may hold a session it checked out of the cache)."""
    return sum(i["in_flight"] for i in snap["instances"]) + snap["queued"]


def wait_idle(gw: Gateway, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = status(gw)
        if not _in_flight(snap) and not snap["queued"] and not snap.get("deleting", 0):
            return True
        time.sleep(0.2)
    return False


def run_phase(gw: Gateway, requests: int, args: argparse.Namespace, duration: float,
              samples: list[Sample] | None) -> tuple[list[list[Any]], float]:
    half = args.concurrency // 2
    specs = [load_spec(gw, api, n, c, duration) for api, n, c in (
        ("openai", requests - requests // 2, args.concurrency - half), ("anthropic", requests // 2, half))]
    started = time.monotonic()
    load = start_load(specs)
    while samples is not None and not all(output.done() for _, output in load):
        time.sleep(args.sample)
        samples.append((round(time.monotonic() - started, 1), *held_upstream(gw)))
    return finish_load(load, duration + 120), time.monotonic() - started


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = {"LINGMA_INSTANCES": str(args.instances), "LINGMA_CONCURRENCY": "16", "QUEUE_SIZE": "1024",
                "SESSION_CACHE_SIZE": str(args.cache_size), "SESSION_TTL": "86400", "LOG_LEVEL": "WARNING"}
    with run_gateway(workdir, settings) as gw:
        warmup = max(1, int(args.requests * args.warmup))
        warm, _ = run_phase(gw, warmup, args, args.duration, None)
        wait_idle(gw, 30)
        base = {"rss_kib": rss_kib(gw.pid), "fds": fds(gw.pid)}
        samples: list[Sample] = []
        main, elapsed = run_phase(gw, args.requests - warmup, args, args.duration, samples)
        idle = wait_idle(gw, 60)
        held, cache, in_flight, deleting, _ = held_upstream(gw)
        end = {"rss_kib": rss_kib(gw.pid), "fds": fds(gw.pid)}
        log_lines = gw.log().count("\n")
    statuses = Counter(str(s[0]) for s in warm + main)
    worst = max((h - c - f - slack for _, h, c, f, _, slack in samples), default=0)
    raw = max((h - c - f for _, h, c, f, _, _ in samples), default=0)
    checks = [
        ("gateway idle at the end", idle, f"in_flight={in_flight} deleting={deleting}"),
        ("sessions held upstream == cache size at the end", held == cache,
         f"simulators hold {held}, cache holds {cache}"),
        ("sessions held <= cache + in flight while loaded", worst <= 0,
         f"largest excess {worst} over {len(samples)} samples (before allowing for the sessions deleted "
         f"while listing: {raw})"),
        ("fds flat", end["fds"] <= base["fds"] + 8, f"{base['fds']} after warm-up, {end['fds']} at the end"),
        ("RSS flat", end["rss_kib"] <= base["rss_kib"] * 1.15 + 8192,
         f"{base['rss_kib']} KiB after warm-up, {end['rss_kib']} KiB at the end"),
    ]
    return {"requests": len(warm) + len(main), "main_requests": len(main), "main_elapsed_s": round(elapsed, 1),
            "rate_per_s": round(len(main) / elapsed, 1) if elapsed else None, "statuses": dict(statuses),
            "incomplete": sum(1 for s in warm + main if s[0] == 200 and not s[4]),
            "samples": samples, "baseline": base, "end": end, "gateway_log_lines": log_lines,
            "checks": [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks],
            "ok": all(ok for _, ok, _ in checks)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--duration", type=float, default=300, help="seconds; bounds each phase")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--cache-size", type=int, default=256)
    p.add_argument("--warmup", type=float, default=0.1, help="share of the requests run before the baseline")
    p.add_argument("--sample", type=float, default=3.0, help="seconds between upstream samples")
    p.add_argument("--json", help="also write the summary as JSON here")
    p.add_argument("--workdir")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = in_workdir(args, "trio-lingma-soak-", lambda workdir: soak(args, workdir))
    print(f"{summary['requests']} requests ({summary['main_requests']} measured in "
          f"{summary['main_elapsed_s']} s, {summary['rate_per_s']}/s); statuses {summary['statuses']}, "
          f"{summary['incomplete']} incomplete 200s")
    for at, held, cache, in_flight, deleting, slack in summary["samples"][-5:]:
        print(f"  t={at:6.1f}s held upstream {held:5} <= cache {cache} + in flight {in_flight} "
              f"(deleting {deleting}; {slack} deleted while listing)")
    return report_checks(summary, args.json)


if __name__ == "__main__":
    sys.exit(main())
