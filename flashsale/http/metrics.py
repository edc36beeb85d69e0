"""Prometheus metrics of one service instance, on its own registry: request durations by route and status,
order outcomes by strategy, the connection pool's `get_stats()`, the strategy's own counters, the database guard,
how many server processes serve, and the process.

One of several worker processes (`flashsale serve --workers N`) exports the same names through prometheus-client's
multiprocess mode instead, so that any worker's `/metrics` reports them all: see `flashsale.http.shared_metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import Response

from flashsale.db.guard import DatabaseGuard
from flashsale.http.live_metrics import LiveObjects
from flashsale.http.shared_metrics import SharedMetrics
from flashsale.strategies import OrderStrategy

DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SERVICE_WORKERS = ("flashsale_service_workers", "server processes serving requests (flashsale serve --workers)")


class LiveCollector(Collector):
    """The pool, the strategy's own counters (retries, conflicts, queue rejections, ...) and the database guard,
    read at scrape time."""

    def __init__(self, live: LiveObjects) -> None:
        self._live = live

    def collect(self) -> Iterator[Metric]:
        for family, samples in self._live.read():
            kind = GaugeMetricFamily if family.kind == "gauge" else CounterMetricFamily
            metric = kind(family.name, family.doc, labels=family.labels)
            for labels, value in samples:
                metric.add_metric(labels, value)
            yield metric


class Metrics:
    """`shared=True`: this process is one of several workers (needs `PROMETHEUS_MULTIPROC_DIR`, see
    `flashsale.http.shared_metrics`)."""

    def __init__(
        self,
        strategy: OrderStrategy,
        pool: Callable[[], AsyncConnectionPool | None],
        guard: Callable[[], DatabaseGuard | None] = lambda: None,
        *,
        shared: bool = False,
        admission: Callable[[], dict[str, float]] = dict,
    ) -> None:
        self.registry = CollectorRegistry()
        self.request_duration = Histogram(
            "flashsale_http_request_duration_seconds",
            "time from the request's arrival to the end of its response",
            ["method", "route", "status"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.orders = Counter(
            "flashsale_orders",
            'outcomes of POST /api/orders: "created" or the error code',
            ["strategy", "outcome"],
            registry=self.registry,
        )
        # Admission control (serve --queue-size, --user-rate): per process, summed over the live processes.
        self.queue_depth = Gauge(
            "flashsale_order_queue_depth",
            "orders waiting in the order queue for a worker",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.queue_overflow = Counter(
            "flashsale_order_queue_overflow",
            "orders refused at once because the order queue was full (503 queue_full)",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "flashsale_rate_limited",
            "orders refused because their user was over the per-user rate (429 rate_limited)",
            registry=self.registry,
        )
        self.admission_shared = Gauge(
            "flashsale_admission_shared",
            "1 while this process's admission goes through Redis (serve --admission redis), 0 while Redis is away "
            "and it falls back to its local share of the limits",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # Set to 1 while this process serves: summed over the live processes in multiprocess mode.
        self.workers = Gauge(*SERVICE_WORKERS, registry=self.registry, multiprocess_mode="livesum")
        self._strategy_name = strategy.name
        self.shared: SharedMetrics | None = None
        live = LiveObjects(strategy, pool, guard, admission)
        if shared:
            self.shared = SharedMetrics(live)
        else:
            self.registry.register(LiveCollector(live))
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(method, route, str(status)).observe(seconds)

    def count_order(self, outcome: str) -> None:
        self.orders.labels(self._strategy_name, outcome).inc()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """While the service serves: counted in `flashsale_service_workers`, and, as one of several workers,
        mirroring what only this process can read into the shared metrics."""
        self.workers.set(1)
        refresher = asyncio.create_task(self.shared.refresh_periodically()) if self.shared else None
        try:
            yield
        finally:
            self.workers.set(0)
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher

    async def endpoint(self, request: Request) -> Response:
        body = self.shared.exposition() if self.shared else generate_latest(self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
