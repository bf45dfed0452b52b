"""Chaos run: a bounded mix of normal requests, client disconnects, upstream hangs and errors,
while instances are SIGKILLed; then leak and correctness checks. Exits 1 when a check fails.

    python tools/chaos.py                       # 2,000 requests
    python tools/chaos.py --requests 10000 --duration 900 --json chaos.json

Theory of operation
-------------------
A gateway with ``--instances`` simulator instances is started with short deadlines
(``IDLE_TIMEOUT``/``FIRST_TOKEN_TIMEOUT`` so hangs end in a timeout error) and a short
``SESSION_TTL``. ``--concurrency`` asyncio clients (stdlib HTTP/1.1, ``_http.py``) send
OpenAI and Anthropic requests, stream and not, drawn from a seeded mix:

* ``normal`` / ``followup``: echo turns, a follow-up repeats an earlier exchange so the
  session cache is hit. They must succeed with a well-formed, complete response — unless a
  SIGKILL happened while they ran ("affected": a protocol-correct error is then acceptable);
* ``disconnect``: a slow stream the client drops after a random delay (before or after the
  headers);
* ``hang`` / ``error``: ``[sim hang]`` / ``[sim error]`` turns, which must end in a
  protocol-correct error: status >= 400 with the API's error body, or, after the headers, a
  complete stream whose last data event is the API's error event.

A killer task SIGKILLs a random READY instance (pid from ``/readyz``) every
``--kill-interval`` seconds. Afterwards the checks: in flight 0, queued 0, every ticket
free (per-instance in_flight/waiting 0), all instances READY again, the simulator processes
are exactly the instances' pids and none is a zombie; upstream sessions: on the live
instances every session the simulator holds is covered by the gateway's session cache (or is
with its session reaper, expired while the simulators were listed), and once ``SESSION_TTL``
has passed both are empty (each session created upstream was deleted, or died with its killed
process); after SIGTERM the gateway exits 0 and leaves no simulator process behind.

The report counts, per scenario, why each request did not succeed: its status and the error's
kind (OpenAI ``code``/``type``, Anthropic ``type``; ``stream …`` for an error after the headers,
``timeout``/``connection: …`` on the client side), so a failed run says what failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _harness import (
    API_KEY,
    HOST,
    Gateway,
    in_workdir,
    report_checks,
    run_gateway,
    simulator_pids,
    stop_gateway,
    worker,
    zombies_of,
)
from _http import Connection, Reply, parse_sse

MODEL = "qwen3-coder"
MIX = {"normal": 50, "followup": 12, "disconnect": 14, "hang": 12, "error": 12}


# -- requests -------------------------------------------------------------------------------


def build(rng: random.Random, n: int) -> dict[str, Any]:
    scenario = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    api = rng.choice(("openai", "anthropic"))
    stream = rng.random() < 0.5
    text = f"chaos {n}"
    messages = [{"role": "user", "content": text}]
    if scenario == "followup":
        first = f"chaos {rng.randrange(max(1, n))}"
        messages = [{"role": "user", "content": first},
                    {"role": "assistant", "content": f"Echo: {first}"},
                    {"role": "user", "content": text}]
    elif scenario == "disconnect":
        messages[0]["content"] = f"[sim long chunks=200 delay=0.005] {text}"
    elif scenario == "hang":
        messages[0]["content"] = f"[sim hang after={rng.choice((0, 1, 3))}] {text}"
    elif scenario == "error":
        status = rng.choice((500, 503))
        messages[0]["content"] = f"[sim error status={status} after={rng.choice((0, 2))}] {text}"
    return {"n": n, "scenario": scenario, "api": api, "stream": stream, "messages": messages,
            "text": text, "drop_after": rng.uniform(0.0, 0.4)}


def http_parts(req: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    body: dict[str, Any] = {"model": MODEL, "messages": req["messages"], "stream": req["stream"]}
    if req["api"] == "openai":
        return "/v1/chat/completions", {"Authorization": f"Bearer {API_KEY}"}, json.dumps(body).encode()
    body["max_tokens"] = 4096
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    return "/v1/messages", headers, json.dumps(body).encode()


# -- judging a response -----------------------------------------------------------------------


def error_body_ok(api: str, body: Any) -> bool:
    """The API's own error shape."""
    if not isinstance(body, dict):
        return False
    if api == "openai":
        err = body.get("error")
        return isinstance(err, dict) and isinstance(err.get("message"), str) and "type" in err
    err = body.get("error")
    return (body.get("type") == "error" and isinstance(err, dict)
            and isinstance(err.get("type"), str) and isinstance(err.get("message"), str))


def error_kind(body: dict[str, Any]) -> str:
    """The error's machine-readable kind: OpenAI's ``code`` (else ``type``), Anthropic's ``type``."""
    err = body.get("error") or {}
    return str(err.get("code") or err.get("type") or "?")


def judge(req: dict[str, Any], reply: Reply) -> tuple[str, str]:
    """``("ok" | "error" | "bad", why)``: success, protocol-correct error, or a violation."""
    if reply.status >= 400:
        try:
            shaped = error_body_ok(req["api"], reply.json())
        except ValueError:
            shaped = False
        return ("error", f"{reply.status} {error_kind(reply.json())}") if shaped else (
            "bad", f"{reply.status} badly shaped")
    if reply.status != 200 or not reply.complete:
        return "bad", f"status {reply.status}, complete={reply.complete}"
    if not req["stream"]:
        return _judge_body(req, reply.json())
    return _judge_stream(req, [parse_sse(e) for e in reply.events])


def _judge_body(req: dict[str, Any], body: Any) -> tuple[str, str]:
    try:
        text = (body["choices"][0]["message"]["content"] if req["api"] == "openai"
                else "".join(b.get("text", "") for b in body["content"]))
    except (KeyError, IndexError, TypeError):
        return "bad", "200 without an answer"
    return ("ok", "") if text.startswith("Echo: ") and text.endswith(req["text"]) else (
        "bad", f"wrong answer {text[:60]!r}")


def _judge_stream(req: dict[str, Any], events: list[tuple[str | None, str]]) -> tuple[str, str]:
    data = [(name, d) for name, d in events if d]
    if req["api"] == "openai":
        if data and data[-1][1] == "[DONE]":
            data = data[:-1]
        elif not data or "error" not in json.loads(data[-1][1]):
            return "bad", "stream ends without [DONE] or an error chunk"
        if data and "error" in json.loads(data[-1][1]):  # the error chunk must be the last one
            last = json.loads(data[-1][1])
            return ("error", f"stream {error_kind(last)}") if error_body_ok("openai", last) else (
                "bad", "badly shaped error chunk")
        text = "".join((c.get("delta") or {}).get("content") or "" for _, d in data
                       for c in json.loads(d).get("choices") or [])
    else:
        if not data:
            return "bad", "empty stream"
        name, last = data[-1]
        if name == "error":
            body = json.loads(last)
            return ("error", f"stream {error_kind(body)}") if error_body_ok("anthropic", body) \
                else ("bad", "badly shaped error event")
        if name != "message_stop":
            return "bad", f"stream ends with {name}"
        text = "".join(json.loads(d).get("delta", {}).get("text", "") for n, d in data
                       if n == "content_block_delta")
    return ("ok", "") if text.startswith("Echo: ") and text.endswith(req["text"]) else (
        "bad", f"wrong streamed answer {text[:60]!r}")


# -- the run --------------------------------------------------------------------------------


class Run:
    def __init__(self, gw: Gateway, args: argparse.Namespace) -> None:
        self.gw, self.args = gw, args
        self.rng = random.Random(args.seed)
        self.results: list[dict[str, Any]] = []
        self.kills: list[float] = []
        self.next = 0
        self.deadline = time.monotonic() + args.duration

    async def client(self) -> None:
        conn = Connection(HOST, self.gw.port)
        while self.next < self.args.requests and time.monotonic() < self.deadline:
            req = build(self.rng, self.next)
            self.next += 1
            self.results.append(await self.one(conn, req))
        conn.abort()

    async def one(self, conn: Connection, req: dict[str, Any]) -> dict[str, Any]:
        path, headers, body = http_parts(req)
        limit = req["drop_after"] if req["scenario"] == "disconnect" else self.args.timeout
        started = time.monotonic()
        outcome, why = "bad", "timeout"
        try:
            reply = await asyncio.wait_for(conn.request("POST", path, body, headers), limit)
            outcome, why = judge(req, reply)
        except TimeoutError:
            conn.abort()
            if req["scenario"] == "disconnect":
                outcome, why = "dropped", ""
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.abort()
            why = f"connection: {type(exc).__name__}"
        return {"n": req["n"], "scenario": req["scenario"], "api": req["api"],
                "stream": req["stream"], "start": started, "end": time.monotonic(),
                "outcome": outcome, "why": why}

    async def killer(self) -> None:
        while self.next < self.args.requests and time.monotonic() < self.deadline:
            await asyncio.sleep(self.args.kill_interval)
            ready = await asyncio.to_thread(self.gw.readyz)
            pids = [i["pid"] for i in ready["instances"] if i["state"] == "ready" and i["pid"]]
            if self.args.kill_interval > 0 and pids:
                os.kill(self.rng.choice(pids), signal.SIGKILL)
                self.kills.append(time.monotonic())

    async def main(self) -> None:
        tasks = [self.client() for _ in range(self.args.concurrency)]
        if self.args.kill_interval > 0:
            tasks.append(self.killer())
        await asyncio.gather(*tasks)

    def affected(self, result: dict[str, Any]) -> bool:
        return any(result["start"] <= k + 0.5 and result["end"] >= k for k in self.kills)


# -- checks ---------------------------------------------------------------------------------


def wait_until(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = predicate()
    return value


def pool_checks(gw: Gateway) -> list[tuple[str, bool, str]]:
    def quiet() -> dict[str, Any] | None:
        r = gw.readyz()
        busy = r["in_flight"] or r["queued"] or any(i["in_flight"] or i["waiting"]
                                                     for i in r["instances"])
        ready = all(i["state"] == "ready" for i in r["instances"])
        # the last SIGKILL may not be noticed yet (the killed pid still shows as ready): settled
        # means the live simulator processes are the instances' pids too
        settled = set(simulator_pids(gw.workdir)) == {i["pid"] for i in r["instances"]}
        return None if busy or not ready or not settled else r
    ready = wait_until(quiet, 20) or gw.readyz()
    status = gw.get("/admin/status", admin=True)[1]
    in_flight = [i["in_flight"] for i in ready["instances"]]
    pids = {i["pid"] for i in ready["instances"]}
    wait_until(lambda: set(simulator_pids(gw.workdir)) == pids, 10)
    sims = set(simulator_pids(gw.workdir))
    zombies = zombies_of(gw.pid)
    return [
        ("in flight 0", ready["in_flight"] == 0, f"in_flight={ready['in_flight']}"),
        ("queue 0", ready["queued"] == 0, f"queued={ready['queued']}"),
        ("all tickets free", not any(in_flight) and not any(i["waiting"] for i in ready["instances"]),
         f"per instance in_flight={in_flight}; /admin/status queued={status.get('queued')}"),
        ("all instances ready", all(i["state"] == "ready" for i in ready["instances"]),
         ", ".join(f"{i['index']}:{i['state']}" for i in ready["instances"])),
        ("no stray or zombie processes", sims == pids and not zombies,
         f"instance pids={sorted(pids)} simulator processes={sorted(sims)} zombies={zombies}"),
    ]


def session_checks(gw: Gateway, ttl: float) -> list[tuple[str, bool, str]]:
    def listed() -> int:
        ports = [i["ws_port"] for i in gw.readyz()["instances"]]
        stats = worker("_wsload.py", "stats", {"ports": ports}, timeout=60)["stats"]
        return sum(len(s["sessions"]) if s else 10**6 for s in stats)

    def upstream() -> tuple[int, int]:
        return listed(), gw.readyz()["sessions"]["size"]

    # Listing is not atomic: a session that expires (SESSION_TTL) meanwhile leaves the cache for
    # the reaper, so the bound also counts what the reaper holds or deleted during the listing.
    before = gw.get("/admin/status", admin=True)[1]
    held = listed()
    now = gw.get("/admin/status", admin=True)[1]
    cached, deleting, deleted = now["cache"]["size"], now["deleting"], now["deleted"] - before["deleted"]
    checks = [("upstream sessions covered by the cache or the reaper", held <= cached + deleting + deleted,
               f"simulators hold {held}, gateway cache holds {cached}, the reaper {deleting} "
               f"(and deleted {deleted} during the listing)")]
    after = wait_until(lambda: (lambda h, c: (h, c) if h == 0 and c == 0 else None)(*upstream()),
                       ttl + 10) or upstream()
    checks.append(("every upstream session deleted after SESSION_TTL", after == (0, 0),
                   f"after TTL: simulators hold {after[0]}, cache holds {after[1]}"))
    return checks


def outcome_checks(run: Run) -> tuple[list[tuple[str, bool, str]], dict[str, Any]]:
    res = run.results
    bad = [r for r in res if r["outcome"] == "bad"]
    expect_error = [r for r in res if r["scenario"] in ("hang", "error")]
    wrong_success = [r for r in expect_error if r["outcome"] == "ok"]
    normal = [r for r in res if r["scenario"] in ("normal", "followup")]
    unaffected = [r for r in normal if not run.affected(r)]
    affected = [r for r in normal if run.affected(r)]
    ok = sum(r["outcome"] == "ok" for r in unaffected)
    rate = ok / len(unaffected) if unaffected else 1.0
    counts: dict[str, dict[str, int]] = {}
    for r in res:
        counts.setdefault(r["scenario"], {}).setdefault(r["outcome"], 0)
        counts[r["scenario"]][r["outcome"]] += 1
    failures: dict[str, int] = {}  # why each request did not succeed (a disconnect's drop is its success)
    for r in res:
        if r["outcome"] not in ("ok", "dropped"):
            why = f"{r['scenario']} {r['outcome']}: {r['why']}"
            failures[why] = failures.get(why, 0) + 1
    examples = [f"#{r['n']} {r['scenario']} {r['api']} stream={r['stream']}: {r['why']}"
                for r in (bad + wrong_success)[:5]]
    checks = [
        ("every affected client got a protocol-correct error", not bad and not wrong_success,
         f"{len(bad)} malformed/cut/hung, {len(wrong_success)} hang/error turns reported success"
         + ("; " + " | ".join(examples) if examples else "")),
        (f"unaffected success rate >= {run.args.min_success:.0%}", rate >= run.args.min_success,
         f"{ok}/{len(unaffected)} = {rate:.2%}; {len(affected)} normal requests overlapped one "
         f"of {len(run.kills)} SIGKILLs: {sum(r['outcome'] == 'ok' for r in affected)} ok, "
         f"{sum(r['outcome'] == 'error' for r in affected)} protocol-correct errors"),
    ]
    return checks, {"outcomes": counts, "failures": dict(sorted(failures.items(), key=lambda kv: -kv[1])),
                    "kills": len(run.kills), "requests": len(res),
                    "unaffected_success_rate": rate}


def chaos(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = {"LINGMA_INSTANCES": str(args.instances), "LINGMA_CONCURRENCY": "16",
                "QUEUE_SIZE": "1024", "SESSION_TTL": str(args.session_ttl),
                "SESSION_CACHE_SIZE": "64", "FIRST_TOKEN_TIMEOUT": "1.5", "IDLE_TIMEOUT": "1.5",
                "SSE_PING_INTERVAL": "0.5", "LINGMA_PING_INTERVAL": "1",
                "LINGMA_PING_TIMEOUT": "1", "LOG_LEVEL": "WARNING"}
    with run_gateway(workdir, settings) as gw:
        run = Run(gw, args)
        started = time.monotonic()
        asyncio.run(run.main())
        elapsed = time.monotonic() - started
        checks, summary = outcome_checks(run)
        checks += pool_checks(gw)
        checks += session_checks(gw, args.session_ttl)
        code = stop_gateway(gw)
    orphans = simulator_pids(workdir)
    checks += [("gateway exited 0 on SIGTERM", code == 0, f"exit code {code}"),
               ("no orphan simulator processes", not orphans, f"left: {orphans}")]
    summary["elapsed_s"] = round(elapsed, 1)
    summary["checks"] = [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks]
    summary["ok"] = all(ok for _, ok, _ in checks)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--duration", type=float, default=600, help="seconds (bound on the load)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--kill-interval", type=float, default=2.0, help="seconds; 0 = no kills")
    p.add_argument("--session-ttl", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=20.0, help="per request (a hang = failure)")
    p.add_argument("--min-success", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--json", help="also write the summary as JSON here")
    p.add_argument("--workdir")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = in_workdir(args, "trio-lingma-chaos-", lambda workdir: chaos(args, workdir))
    print(f"{summary['requests']} requests in {summary['elapsed_s']} s, "
          f"{summary['kills']} instances SIGKILLed")
    for scenario, counts in sorted(summary["outcomes"].items()):
        print(f"  {scenario:11} " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print("why requests did not succeed (scenario outcome: status and error kind):")
    for why, count in summary["failures"].items():
        print(f"  {count:6}  {why}")
    return report_checks(summary, args.json)


if __name__ == "__main__":
    sys.exit(main())
