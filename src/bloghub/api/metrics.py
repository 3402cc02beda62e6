"""``/metrics`` in the Prometheus text format: HTTP traffic of this process, and consumer
lag, events applied and dead letters of every projector from the ops history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import Endpoint, container
from bloghub.api.ops_auth import require_operator


class HttpMetrics:
    """Request counts and latencies, labelled by route template (never by raw path)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bloghub_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bloghub_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


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
        applied.add_metric([group], sample["applied"])
        dead.add_metric([group, names[group]], sample["dead_letters"])
    return [lag, lag_s, applied, dead]


async def metrics(request: Request) -> Response:
    c = container(request)
    if not c.settings.metrics_public:
        # Scraping reads Redis for every group: not for anyone who can reach the API.
        require_operator(request)
    latest, names = {}, {}
    for w in await c.ops.watched():
        sample = await c.ops.history.latest(w.group)
        if sample is not None:
            latest[w.group], names[w.group] = sample, w.name
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
        errors=(401,),
    ),
]
