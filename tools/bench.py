"""Overhead benchmark: the gateway against a baseline that drives the simulator directly.

    python tools/bench.py                       # full run, ~1-2 minutes
    python tools/bench.py --quick --json out.json

Theory of operation
-------------------
Everything runs on 127.0.0.1. The gateway's instances are the built-in simulator, whose echo
answers have no artificial delay. For each instance count the tool starts a gateway, then:

* baseline: ``_wsload.py`` drives the *same* simulator processes (ports from ``/readyz``) over
  their WebSocket JSON-RPC protocol with the same prompts and concurrency, answering every
  push like the gateway does. Its TTFT is the first ``chat/answer`` with text, its total the
  ``chat/finish``;
* gateway: ``_loadgen.py`` (a stdlib HTTP/1.1 client in its own process) sends OpenAI and
  Anthropic requests, stream and non-stream. TTFT is the first SSE event carrying answer text.

"Added" latency is gateway minus baseline, percentile by percentile. The load generator's own
ceiling is measured in the same run against a trivial HTTP server, so a saturated client is
visible. Relay throughput uses ``[sim long chunks=N]`` streams; memory per stream holds K
``[sim hang after=1]`` streams open and reads the gateway's VmRSS. Every phase is bounded by
``--requests`` and ``--duration``, and ends with a leak check (0 in flight, 0 queued, and no
simulator process left once the gateway stopped). Targets are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cost import floor_server, per, ratio, syscalls
from _harness import (
    API_KEY,
    HOST,
    Gateway,
    cpu_seconds,
    parallel_workers,
    percentile,
    rss_kib,
    run_gateway,
    simulator_pids,
    summary_ms,
    worker,
)

MODEL = "qwen3-coder"
MODEL_KEY = "dashscope_qwen3_coder"
PROMPT = "hello from bench client {n}"
KINDS = ("openai", "openai-stream", "anthropic", "anthropic-stream")


# -- request bodies ------------------------------------------------------------------------


def request_for(kind: str, prompt: str, max_tokens: int = 4096) -> tuple[str, dict[str, str], str]:
    """``(path, headers, body)`` of one request of ``kind`` (``{n}`` is filled per request)."""
    stream = kind.endswith("-stream")
    messages = [{"role": "user", "content": prompt}]
    if kind.startswith("openai"):
        body: dict[str, Any] = {"model": MODEL, "messages": messages, "stream": stream}
        return "/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}, json.dumps(body)
    body = {"model": MODEL, "max_tokens": max_tokens, "messages": messages, "stream": stream}
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    return "/v1/messages", headers, json.dumps(body)


# -- one measured load ---------------------------------------------------------------------


def http_load(port: int, kind: str, prompt: str, *, concurrency: int, requests: int,
              duration: float, procs: int = 1, timeout: float = 30,
              pid: int | None = None, max_tokens: int = 4096) -> dict[str, Any]:
    """Closed-loop load from ``procs`` generator processes; merged samples and rates (and the
    CPU time process ``pid`` spent per successful request)."""
    path, headers, body = request_for(kind, prompt, max_tokens)
    specs = [dict(host=HOST, port=port, path=path, headers=headers, bodies=[body],
                  concurrency=max(1, concurrency // procs), requests=max(1, requests // procs),
                  duration=duration, timeout=timeout) for _ in range(procs)]
    cpu = cpu_seconds(pid) if pid else 0.0
    results = parallel_workers("_loadgen.py", "run", specs, timeout=duration + timeout + 60)
    cpu = cpu_seconds(pid) - cpu if pid else 0.0
    samples = [s for r in results for s in r["samples"]]
    elapsed = max(r["elapsed"] for r in results)
    ok = [s for s in samples if s[0] == 200 and s[4]]
    return {
        "kind": kind, "concurrency": concurrency, "requests": len(samples), "ok": len(ok),
        "errors": len(samples) - len(ok), "elapsed_s": round(elapsed, 3),
        "req_per_s": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        "events_per_s": round(sum(s[3] for s in ok) / elapsed, 1) if elapsed else 0.0,
        "gateway_cpu_ms_per_req": round(cpu * 1000 / len(ok), 3) if pid and ok else None,
        "events": sum(s[3] for s in ok), "cpu_s": cpu,
        "ttft": [s[1] for s in ok if s[1] is not None], "total": [s[2] for s in ok],
    }


def ws_load(ports: list[int], prompt: str, *, concurrency: int, requests: int,
            duration: float, timeout: float = 30) -> dict[str, Any]:
    """The baseline: the same prompts straight to the simulators."""
    spec = dict(ports=ports, prompts=[prompt], model_key=MODEL_KEY, concurrency=concurrency,
                requests=requests, duration=duration, timeout=timeout)
    result = worker("_wsload.py", "run", spec, timeout=duration + timeout + 60)
    samples, elapsed = result["samples"], result["elapsed"]
    ok = [s for s in samples if s[0]]
    return {
        "kind": "baseline", "concurrency": concurrency, "requests": len(samples),
        "ok": len(ok), "errors": len(samples) - len(ok), "elapsed_s": round(elapsed, 3),
        "req_per_s": round(len(ok) / elapsed, 1) if elapsed else 0.0,
        "events_per_s": round(sum(s[3] for s in ok) / elapsed, 1) if elapsed else 0.0,
        "events": sum(s[3] for s in ok), "cpu_s": result.get("cpu"),
        "ttft": [s[1] for s in ok if s[1] is not None], "total": [s[2] for s in ok],
    }


def finish(row: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Replace raw samples by percentiles; add gateway-minus-baseline figures."""
    ttft, total = row.pop("ttft"), row.pop("total")
    row["ttft_ms"], row["total_ms"] = summary_ms(ttft), summary_ms(total)
    if baseline is not None:
        row["added_ttft_ms"] = _added(ttft, baseline["ttft_raw"]) if row["kind"].endswith(
            "stream") else None
        row["added_total_ms"] = _added(total, baseline["total_raw"])
    return row


def _added(values: list[float], base: list[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in (50, 90, 99):
        a, b = percentile(values, q), percentile(base, q)
        out[f"p{q}"] = None if a is None or b is None else round((a - b) * 1000, 3)
    return out


def keep_raw(row: dict[str, Any]) -> dict[str, Any]:
    row["ttft_raw"], row["total_raw"] = row["ttft"], row["total"]
    return row


# -- leak checks ---------------------------------------------------------------------------


def quiet(gw: Gateway, timeout: float = 10) -> dict[str, Any]:
    """Wait until nothing is in flight or queued; return the check."""
    deadline = time.monotonic() + timeout
    ready: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            ready = gw.readyz()
        except OSError:  # busy tearing down thousands of streams: ask again
            continue
        busy = ready["in_flight"] or ready["queued"] or any(
            i["in_flight"] or i["waiting"] for i in ready["instances"])
        if not busy:
            return {"ok": True, "in_flight": 0, "queued": 0}
        time.sleep(0.1)
    return {"ok": False, "in_flight": ready.get("in_flight"), "queued": ready.get("queued")}


# -- phases ---------------------------------------------------------------------------------


def ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """The load generator against a trivial server: its own req/s ceiling."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_loadgen.py"), "serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"duration": args.duration * 3 + 30}).encode() + b"\n")
    proc.stdin.flush()
    try:
        port = json.loads(proc.stdout.readline())["port"]
        row = http_load(port, "openai", PROMPT, concurrency=args.concurrency,
                        requests=args.requests, duration=args.duration, procs=args.procs)
    finally:
        proc.terminate()
        proc.wait(10)
    return finish(row, None) | {"kind": "trivial-server"}


def latency_table(gw: Gateway, ports: list[int], args: argparse.Namespace,
                  c: int) -> list[dict[str, Any]]:
    n, d = args.requests, args.duration
    ws_load(ports, PROMPT, concurrency=c, requests=min(n, 300), duration=args.warmup)  # warm-up
    base = keep_raw(ws_load(ports, PROMPT, concurrency=c, requests=n, duration=d))
    rows = []
    for kind in KINDS:
        http_load(gw.port, kind, PROMPT, concurrency=c, requests=min(n, 300), duration=args.warmup,
                  procs=args.procs)
        rows.append(finish(http_load(gw.port, kind, PROMPT, concurrency=c, requests=n,
                                     duration=d, procs=args.procs, pid=gw.pid), base))
    base.pop("ttft_raw"), base.pop("total_raw")
    return [finish(base, None), *rows]


def relay(gw: Gateway, ports: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per API, on long streams: SSE events relayed per second, gateway CPU µs and syscalls per
    event; the baseline (a direct client answering the same pushes) in the same run."""
    prompt = f"[sim long chunks={args.chunks}] relay {{n}}"
    c, n = args.relay_concurrency, max(1, args.requests // args.chunks * 20)
    base = ws_load(ports, prompt, concurrency=c, requests=n, duration=args.duration)
    base_us = per(base["cpu_s"], base["events"], 1e6)
    rows = [finish(base, None) | {"cpu_us_per_event": base_us}]
    for kind in ("openai-stream", "anthropic-stream"):
        with syscalls(gw.pid) as counted:  # max_tokens: both APIs relay every chunk
            row = http_load(gw.port, kind, prompt, concurrency=c, requests=n, duration=args.duration,
                            procs=args.procs, pid=gw.pid, max_tokens=10**7)
        us = per(row["cpu_s"], row["events"], 1e6)
        rows.append(finish(row, None) | {
            "cpu_us_per_event": us, "vs_baseline": ratio(us, base_us),
            "syscalls_per_event": per(counted["syscalls"], row["events"])})
    return rows


def short_costs(gw: Gateway, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per API, short non-stream requests at 1 client: gateway CPU ms and syscalls per request,
    next to the trivial-route floor (hypercorn + quart-trio, ``_floor.py``) in the same run."""
    n, d = min(args.requests, 2000), args.duration
    with floor_server() as (pid, port):
        http_load(port, "openai", PROMPT, concurrency=1, requests=min(n, 200), duration=args.warmup)  # warm-up
        with syscalls(pid) as counted:
            floor = http_load(port, "openai", PROMPT, concurrency=1, requests=n, duration=d, pid=pid)
    floor_ms = floor["gateway_cpu_ms_per_req"]
    rows = [{"kind": "trivial-route floor", "cpu_ms_per_req": floor_ms,
             "syscalls_per_req": per(counted["syscalls"], floor["ok"]), "req_per_s": floor["req_per_s"]}]
    for kind in ("openai", "anthropic"):
        http_load(gw.port, kind, PROMPT, concurrency=1, requests=min(n, 200), duration=args.warmup)  # warm-up
        with syscalls(gw.pid) as counted:
            row = http_load(gw.port, kind, PROMPT, concurrency=1, requests=n, duration=d, pid=gw.pid)
        ms = row["gateway_cpu_ms_per_req"]
        rows.append({"kind": kind, "cpu_ms_per_req": ms, "vs_floor": ratio(ms, floor_ms),
                     "above_floor_ms": None if ms is None or floor_ms is None else round(ms - floor_ms, 3),
                     "syscalls_per_req": per(counted["syscalls"], row["ok"]), "req_per_s": row["req_per_s"]})
    return rows


def scaling(gw: Gateway, ports: list[int], instances: int,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    http_load(gw.port, "openai", PROMPT, concurrency=4, requests=min(args.requests, 100),
              duration=args.warmup)  # warm-up
    for c in args.scale_concurrency:
        n, d = args.requests, args.scale_duration
        base = ws_load(ports, PROMPT, concurrency=c, requests=n, duration=d)
        row = finish(http_load(gw.port, "openai", PROMPT, concurrency=c, requests=n, duration=d,
                               procs=args.procs, pid=gw.pid), None)
        rows.append({"instances": instances, "concurrency": c, "gateway_req_per_s": row["req_per_s"],
                     "baseline_req_per_s": base["req_per_s"], "gateway_total_ms": row["total_ms"],
                     "baseline_total_ms": summary_ms(base["total"]), "errors": row["errors"],
                     "gateway_cpu_ms_per_req": row["gateway_cpu_ms_per_req"]})
    return rows


def memory(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Gateway RSS with K idle streams open (each upstream turn hangs after one chunk)."""
    k, instances = args.idle_streams, args.instances
    settings = _settings(instances, k // instances + 1)
    with run_gateway(workdir / "memory", settings) as gw:
        http_load(gw.port, "openai", PROMPT, concurrency=8, requests=min(args.requests, 200), duration=args.warmup)
        before = gw.rss_kib()
        path, headers, body = request_for("openai-stream", "[sim hang after=1] idle {n}")
        spec = dict(host=HOST, port=gw.port, path=path, headers=headers, bodies=[body],
                    concurrency=k, duration=args.hold_timeout, timeout=60)
        holder = subprocess.Popen([sys.executable, str(Path(__file__).parent / "_loadgen.py"),
                                   "hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(json.dumps(spec).encode() + b"\n")
        holder.stdin.flush()
        opened = json.loads(holder.stdout.readline() or b"{}").get("opened", 0)
        held = gw.rss_kib()
        in_flight = gw.readyz()["in_flight"]
        sims = [rss_kib(i["pid"]) for i in gw.readyz()["instances"] if i["pid"]]
        holder.communicate(b"close\n", timeout=60)
        leak = quiet(gw, timeout=15)
        per_stream = (held - before) / opened if opened else None
        return {"streams": k, "opened": opened, "in_flight_while_held": in_flight,
                "rss_before_mib": round(before / 1024, 1), "rss_held_mib": round(held / 1024, 1),
                "kib_per_stream": None if per_stream is None else round(per_stream, 1),
                "simulator_rss_mib": [round(s / 1024, 1) for s in sims], "leak_check": leak}


def _settings(instances: int, concurrency: int) -> dict[str, str]:
    return {"LINGMA_INSTANCES": str(instances), "LINGMA_CONCURRENCY": str(concurrency),
            "QUEUE_SIZE": "4096", "LOG_LEVEL": "WARNING"}


def run_all(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "args": vars(args).copy(), "leaks": []}
    out["ceiling"] = ceiling(args)
    out["scaling"] = []
    for n in sorted(set(args.scale_instances) | {args.instances}):
        root = workdir / f"instances-{n}"
        widest = max([*args.scale_concurrency, *args.latency_concurrency, args.concurrency])
        with run_gateway(root, _settings(n, widest)) as gw:
            ports = [i["ws_port"] for i in gw.readyz()["instances"]]
            if n in args.scale_instances:
                out["scaling"] += scaling(gw, ports, n, args)
            if n == args.instances:
                out["latency"] = {c: latency_table(gw, ports, args, c)
                                  for c in args.latency_concurrency}
                out["relay"] = relay(gw, ports, args)
                out["short"] = short_costs(gw, args)
                out["rss_idle_mib"] = round(gw.rss_kib() / 1024, 1)
            out["leaks"].append({"instances": n, **quiet(gw)})
        orphans = simulator_pids(root)
        out["leaks"].append({"instances": n, "orphans": orphans, "ok": not orphans})
    if args.idle_streams:
        out["memory"] = memory(workdir, args)
        orphans = simulator_pids(workdir / "memory")
        out["leaks"] += [out["memory"]["leak_check"], {"orphans": orphans, "ok": not orphans}]
    out["leaks_ok"] = all(leak["ok"] for leak in out["leaks"])
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 platform.processor())
    import os
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


# -- output ---------------------------------------------------------------------------------


def _p(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return "/".join("-" if d[k] is None else f"{d[k]:.2f}" for k in ("p50", "p90", "p99"))


def table(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["args"]
    lines = [f"machine: {m['nproc']} CPU, {m['cpu']}, Python {m['python']}",
             f"load generator ceiling (trivial server, c={a['concurrency']}): "
             f"{result['ceiling']['req_per_s']:.0f} req/s", ""]
    for c, rows in result.get("latency", {}).items():
        lines += [f"latency at concurrency {c}, {a['instances']} instances (ms, p50/p90/p99; "
                  "cpu = gateway CPU ms per request)",
                  f"{'kind':17} {'req/s':>6} {'cpu':>5} {'TTFT':>20} {'total':>20} "
                  f"{'added TTFT':>18} {'added total':>18}"]
        for r in rows:
            cpu = r.get("gateway_cpu_ms_per_req")
            lines.append(f"{r['kind']:17} {r['req_per_s']:6.0f} {'-' if cpu is None else cpu:>5} "
                         f"{_p(r['ttft_ms']):>20} {_p(r['total_ms']):>20} "
                         f"{_p(r.get('added_ttft_ms')):>18} {_p(r.get('added_total_ms')):>18}")
        lines.append("")
    if "relay" in result:
        lines.append(f"relay ([sim long chunks={a['chunks']}], c={a['relay_concurrency']}; CPU µs and "
                     "syscalls per event; baseline = a direct client answering the same pushes)")
        for r in result["relay"]:
            unit = "answer pushes/s" if r["kind"] == "baseline" else "SSE events/s"
            lines.append(f"  {r['kind']:18} {r['events_per_s']:10.0f} {unit:16} cpu={r['cpu_us_per_event']} µs"
                         f"  x{r.get('vs_baseline') or 1} baseline  syscalls={r.get('syscalls_per_event', '-')}")
        lines.append("")
    if "short" in result:
        lines.append("short non-stream requests, 1 client (gateway CPU ms and syscalls per request)")
        for r in result["short"]:
            extra = f"  x{r['vs_floor']} floor, +{r['above_floor_ms']} ms" if "vs_floor" in r else ""
            lines.append(f"  {r['kind']:20} cpu={r['cpu_ms_per_req']} ms  syscalls={r['syscalls_per_req']}"
                         f"  {r['req_per_s']:.0f} req/s{extra}")
        lines.append("")
    if result["scaling"]:
        lines += ["scaling: OpenAI non-stream (req/s gateway | baseline; total p50/p99 ms)"]
        for r in result["scaling"]:
            t, b = r["gateway_total_ms"], r["baseline_total_ms"]
            lines.append(f"  instances={r['instances']} c={r['concurrency']:<4} "
                         f"{r['gateway_req_per_s']:8.0f} | {r['baseline_req_per_s']:8.0f}   "
                         f"{_p2(t)} | {_p2(b)}   cpu={r['gateway_cpu_ms_per_req']} ms/req "
                         f"errors={r['errors']}")
        lines.append("")
    if "memory" in result:
        mem = result["memory"]
        lines.append(f"memory: {mem['opened']}/{mem['streams']} idle streams open: gateway RSS "
                     f"{mem['rss_before_mib']} -> {mem['rss_held_mib']} MiB "
                     f"({mem['kib_per_stream']} KiB/stream)")
    lines.append(f"leak checks: {'ok' if result['leaks_ok'] else 'FAILED'}")
    return "\n".join(lines)


def _p2(d: dict[str, Any]) -> str:
    return f"{d['p50'] or 0:.1f}/{d['p99'] or 0:.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=64, help="ceiling measurement")
    p.add_argument("--latency-concurrency", type=lambda s: [int(x) for x in s.split(",") if x],
                   default=[1, 64], help="latency tables at these concurrencies")
    p.add_argument("--requests", type=int, default=20000, help="upper bound per measurement")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (bound)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds per warm-up (bound)")
    p.add_argument("--procs", type=int, default=1, help="load generator processes")
    p.add_argument("--chunks", type=int, default=2000, help="chunks per relay stream")
    p.add_argument("--relay-concurrency", type=int, default=8)
    p.add_argument("--idle-streams", type=int, default=2000, help="K idle streams; 0 = skip")
    p.add_argument("--hold-timeout", type=float, default=60)
    p.add_argument("--scale-instances", type=lambda s: [int(x) for x in s.split(",") if x],
                   default=[1, 2, 4])
    p.add_argument("--scale-concurrency", type=lambda s: [int(x) for x in s.split(",") if x],
                   default=[1, 16, 64])
    p.add_argument("--scale-duration", type=float, default=2.0)
    p.add_argument("--quick", action="store_true", help="CI-sized: tiny and fast")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--workdir", help="instance workdirs go here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.quick:
        # each phase stops at whichever bound comes first: a few dozen requests say that every path
        # works and leaks nothing (CI); figures worth reading need the full run
        args.instances, args.concurrency, args.requests, args.duration, args.warmup = 2, 8, 60, 0.5, 0.25
        args.latency_concurrency = [8]
        args.chunks, args.relay_concurrency, args.idle_streams = 200, 2, 50
        args.scale_instances, args.scale_concurrency, args.scale_duration = [2], [1, 8], 0.5
        args.hold_timeout = 30
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="trio-lingma-bench-"))
    try:
        result = run_all(args, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if result["leaks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
