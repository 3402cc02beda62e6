"""``/metrics`` in the Prometheus text format: HTTP traffic of this process, and consumer
lag, events applied and dead letters of every projector from the ops history."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import Endpoint, container
from bloghub.api.ops_auth import require_operator

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class HttpMetrics(Collector):
    """Request counts and latencies, labelled by route template (never by raw path).

    Kept as plain counters and turned into metric families only when scraped: an
    observation is a few dictionary operations (prometheus_client's labelled children
    cost several microseconds per request each, under a lock this event loop never
    needs)."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], int] = {}
        # (method, route) -> per-bucket counts (the last one is +Inf), then the sum.
        self._latency: dict[tuple[str, str], list[float]] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        series = self._latency.get((method, route))
        if series is None:
            series = self._latency[(method, route)] = [0.0] * (len(BUCKETS) + 2)
        series[bisect_left(BUCKETS, seconds)] += 1
        series[-1] += seconds

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "bloghub_http_requests", "HTTP requests served", labels=["method", "route", "status"]
        )
        for (method, route, status), count in self._requests.items():
            requests.add_metric([method, route, str(status)], count)
        latency = HistogramMetricFamily(
            "bloghub_http_request_duration_seconds",
            "HTTP request latency",
            labels=["method", "route"],
        )
        for (method, route), series in self._latency.items():
            cumulative = list(accumulate(series[:-1]))
            bounds = [*(str(float(b)) for b in BUCKETS), "+Inf"]
            latency.add_metric(
                [method, route], list(zip(bounds, cumulative, strict=True)), series[-1]
            )
        return [requests, latency]


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def projector_families(
    latest: Mapping[str, dict[str, Any]], names: Mapping[str, str]
) -> list[Metric]:
    lag = GaugeMetricFamily(
        "bloghub_consumer_lag", "Messages not yet applied", labels=["group", "topic", "partition"]
    )
    lag_s = GaugeMetricFamily(
        "bloghub_consumer_lag_seconds",
        "Age of the oldest message not yet applied",
        labels=["group", "topic", "partition"],
    )
    applied = CounterMetricFamily(
        "bloghub_events_applied", "Events applied by projectors", labels=["group"]
    )
    dead = CounterMetricFamily(
        "bloghub_dead_letters",
        "Events sent to the dead-letter topic",
        labels=["group", "projector"],
    )
    for group, sample in latest.items():
        for p in sample["partitions"]:
            labels = [group, p["topic"], str(p["partition"])]
            lag.add_metric(labels, p["lag"])
            if p["lag_seconds"] is not None:
                lag_s.add_metric(labels, p["lag_seconds"])
        if sample.get("applied") is not None:
            applied.add_metric([group], sample["applied"])
        if sample.get("dead_letters") is not None:
            dead.add_metric([group, names[group]], sample["dead_letters"])
    return [lag, lag_s, applied, dead]


async def metrics(request: Request) -> Response:
    c = container(request)
    if not c.settings.metrics_public:
        # Scraping reads Redis for every group: not for anyone who can reach the API.
        await require_operator(request)
    latest, names = {}, {}
    # Idle by design until switched in, a built generation's lag only grows: an alert on
    # lag would fire for it. The dashboard and `bloghub lag` show it.
    watched = [w for w in await c.ops.watched() if w.state != "built"]
    # A sample older than the window states are judged on is no current figure (the
    # samplers cannot reach Kafka, say): its series is left out, not exported as now.
    oldest = time.time() - c.settings.ops_state_window_s
    try:
        for w in watched:
            sample = await c.ops.history.latest(w.group)
            if sample is not None and float(sample["at"]) >= oldest:
                latest[w.group], names[w.group] = sample, w.name
    except RedisError:
        # The samples are kept in Redis: while it does not answer, the lag is read from
        # Kafka now (applied and dead-letter counts, kept in Redis too, are left out), so
        # alerts on lag keep working through the outage.
        for p in await c.ops.read_live(watched, time.time()):
            if p["sampled_at"] is not None:
                latest[p["group"]], names[p["group"]] = p, p["projector"]
    registry = CollectorRegistry()
    registry.register(_Snapshot(projector_families(latest, names)))
    body = generate_latest(request.app.state.http_metrics.registry) + generate_latest(registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


ENDPOINTS = [
    Endpoint(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics (operator token unless BLOGHUB_METRICS_PUBLIC)",
        "ops",
        media_type="text/plain",
        errors=(401, 429),
    ),
]
