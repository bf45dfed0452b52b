"""Push-flood check (issue 14 item 4): one huge stream must not make its instance look dead.

    python tools/flood.py                        # 20,000 chunks on 1 instance, ~30-60 s
    python tools/flood.py --chunks 5000 --json out.json

Theory of operation
-------------------
A gateway with one simulator instance and frequent health probes serves a ``[sim long
chunks=N]`` OpenAI stream — N ``chat/answer`` pushes, each a request the gateway must answer —
while other clients send short requests to the same instance the whole time. Before the fix the
gateway's outbox overflowed, answers were dropped ("outbox full"), probes queued behind them,
the instance went UNHEALTHY and the short requests got 503s.

Reported: the stream's events and status, the short requests by status, instance state
changes seen in the gateway log, "outbox full" lines (dropped answers), and the simulator's
``unansweredPushes`` (answers that came later than its 3 s ack timeout, or never). Stdlib only
(plus the package); everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from _harness import HOST, parallel_workers, run_gateway, worker
from bench import request_for


def load_spec(port: int, kind: str, prompt: str, *, concurrency: int, requests: int,
              duration: float) -> dict[str, Any]:
    path, headers, body = request_for(kind, prompt)
    return dict(host=HOST, port=port, path=path, headers=headers, bodies=[body],
                concurrency=concurrency, requests=requests, duration=duration, timeout=120)


def flood(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = {"LINGMA_INSTANCES": "1", "LINGMA_CONCURRENCY": str(args.clients + 1),
                "LINGMA_PING_INTERVAL": "1", "LINGMA_PING_TIMEOUT": "1", "LOG_LEVEL": "INFO"}
    with run_gateway(workdir, settings) as gw:
        specs = [load_spec(gw.port, "openai-stream", f"[sim long chunks={args.chunks}] flood",
                           concurrency=1, requests=1, duration=args.duration),
                 load_spec(gw.port, "openai", "short {n}", concurrency=args.clients,
                           requests=10**9, duration=args.duration)]
        long, short = parallel_workers("_loadgen.py", "run", specs, timeout=args.duration + 180)
        ports = [i["ws_port"] for i in gw.readyz()["instances"]]  # a restart changes them
        sim = worker("_wsload.py", "stats", {"ports": ports}, timeout=30)["stats"]
        ready, log = gw.readyz(), gw.log()
    (status, _ttft, total, events, complete), = long["samples"]
    return {
        "chunks": args.chunks, "short_clients": args.clients,
        "stream": {"status": status, "events": events, "complete": complete,
                   "seconds": round(total, 2)},
        "short_requests": dict(Counter(str(s[0]) for s in short["samples"])),
        "state_changes": [line.split(": ", 1)[-1] for line in log.splitlines() if " → " in line],
        "dropped_answers": log.count("outbox full"),
        "late_or_missing_acks": sum(s["unansweredPushes"] for s in sim if s),
        "restarts": sum(i["restarts"] for i in ready["instances"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent short-request clients")
    parser.add_argument("--duration", type=float, default=30, help="seconds of short requests")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        result = flood(args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = (result["stream"]["complete"] and set(result["short_requests"]) == {"200"}
          and not result["dropped_answers"] and not any("unhealthy" in s for s in result["state_changes"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
