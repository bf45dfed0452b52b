"""Prometheus metrics: event counters/histograms declared here, pool gauges read at scrape time.

Each app has its own ``CollectorRegistry`` (no module globals, so several apps in one process —
tests — never collide). Gauges that reflect pool state are not kept up to date by hand: a
custom collector reads the gateway's frozen ``statistics()`` snapshot when scraped (style.md
§10). Label values are bounded: protocol, route template, status code, instance index, state,
and model ids from the runtime's catalogue — never a request id, a key or user text.

With several hypercorn workers each process has its own registry and a scrape sees one
worker; run one worker per container (our default) — see DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class _PoolCollector(Collector):
    def __init__(self, snapshot: Callable[[], Any]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        instances = list(getattr(snap, "instances", ()))
        in_flight = GaugeMetricFamily("trio_lingma_in_flight", "Requests holding a ticket", labels=["instance"])
        state = GaugeMetricFamily("trio_lingma_instance_state", "1 for the instance's current state",
                                  labels=["instance", "state"])
        restarts = CounterMetricFamily("trio_lingma_instance_restarts", "Instance restarts", labels=["instance"])
        logged_in = GaugeMetricFamily("trio_lingma_instance_logged_in",
                                      "1 when the runtime's auth/status says logged in", labels=["instance"])
        for inst in instances:
            idx = str(inst.index)
            in_flight.add_metric([idx], inst.in_flight)
            state.add_metric([idx, inst.state.value], 1)
            restarts.add_metric([idx], inst.restarts)
            if inst.logged_in is not None:
                logged_in.add_metric([idx], 1 if inst.logged_in else 0)
        yield from (in_flight, state, restarts, logged_in)
        yield GaugeMetricFamily("trio_lingma_queued", "Requests waiting for admission",
                                value=getattr(snap, "queued", 0))
        yield from self._optional(snap)

    def _optional(self, snap: Any) -> Iterator[Metric]:
        probe = getattr(snap, "probe_failures", None)
        if probe is not None:
            yield CounterMetricFamily("trio_lingma_probe_failures", "Failed health probes", value=probe)
        cache = getattr(snap, "cache", None)
        if cache is not None:
            yield GaugeMetricFamily("trio_lingma_session_cache_size", "Cached upstream sessions",
                                    value=getattr(cache, "size", 0))
            for name in ("hits", "misses", "evictions"):
                yield CounterMetricFamily(f"trio_lingma_session_cache_{name}", f"Session cache {name}",
                                          value=getattr(cache, name, 0))
        deleting = getattr(snap, "deleting", None)
        if deleting is not None:
            yield GaugeMetricFamily("trio_lingma_sessions_deleting",
                                    "Upstream sessions waiting to be deleted or being deleted", value=deleting)


class _ConnectionCollector(Collector):
    def __init__(self, snapshot: Callable[[], Any]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield GaugeMetricFamily("trio_lingma_client_connections",
                                "Client connections open (counted from their first request)", value=snap.open)
        yield GaugeMetricFamily("trio_lingma_client_connections_limit", "MAX_CONNECTIONS in effect", value=snap.limit)
        yield CounterMetricFamily("trio_lingma_client_connections_refused",
                                  "New connections over MAX_CONNECTIONS (answered 503 unless probe or operator)",
                                  value=snap.refused)


class Metrics:
    """The app's metric families."""

    def __init__(self, snapshot: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("trio_lingma_requests", "HTTP requests",
                                ["protocol", "route", "status"], registry=reg)
        self.latency = Histogram("trio_lingma_request_duration_seconds", "Request latency",
                                 ["protocol", "route"], buckets=LATENCY_BUCKETS, registry=reg)
        self.first_token = Histogram("trio_lingma_time_to_first_token_seconds", "Time to first token",
                                     ["protocol"], buckets=LATENCY_BUCKETS, registry=reg)
        self.queue_wait = Histogram("trio_lingma_queue_wait_seconds", "Time waiting for admission",
                                    buckets=LATENCY_BUCKETS, registry=reg)
        self.tokens = Counter("trio_lingma_tokens", "Tokens by model and direction",
                              ["model", "direction"], registry=reg)
        reg.register(_PoolCollector(snapshot))

    def watch_connections(self, snapshot: Callable[[], Any]) -> None:
        """Report the client-connection table's ``statistics()`` at scrape time."""
        self.registry.register(_ConnectionCollector(snapshot))

    def observe_turn(self, report: Any) -> None:
        """Record one finished request (a ``backend.gateway.TurnReport``)."""
        self.tokens.labels(report.model, "input").inc(report.input_tokens)
        self.tokens.labels(report.model, "output").inc(report.output_tokens)
        if report.queue_wait is not None:
            self.queue_wait.observe(report.queue_wait)
        if report.first_token_after is not None:
            self.first_token.labels("all").observe(report.first_token_after)

    def render(self) -> bytes:
        return generate_latest(self.registry)
