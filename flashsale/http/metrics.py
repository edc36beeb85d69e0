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
from typing import TYPE_CHECKING

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
from flashsale.strategies import OrderStrategy

if TYPE_CHECKING:
    from flashsale.http.shared_metrics import SharedMetrics

DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# psycopg_pool's get_stats() keys: instant measures become gauges, running counts become counters (ms as seconds).
POOL_GAUGES = {
    "pool_min": ("flashsale_pool_min_connections", "pool min_size"),
    "pool_max": ("flashsale_pool_max_connections", "pool max_size"),
    "pool_size": ("flashsale_pool_connections", "connections currently managed by the pool"),
    "pool_available": ("flashsale_pool_available_connections", "connections idle in the pool"),
    "requests_waiting": ("flashsale_pool_requests_waiting", "requests waiting for a connection now"),
}
POOL_COUNTERS = {
    "requests_num": ("flashsale_pool_requests", "connections requested from the pool", 1),
    "requests_queued": ("flashsale_pool_requests_queued", "requests that had to wait for a connection", 1),
    "requests_wait_ms": ("flashsale_pool_requests_wait_seconds", "time spent waiting for a connection", 1e-3),
    "requests_errors": ("flashsale_pool_requests_errors", "requests that got no connection (timeout, ...)", 1),
    "usage_ms": ("flashsale_pool_usage_seconds", "time connections were out of the pool", 1e-3),
    "returns_bad": ("flashsale_pool_returns_bad", "connections returned in a bad state", 1),
    "connections_num": ("flashsale_pool_connection_attempts", "connection attempts to the server", 1),
    "connections_ms": ("flashsale_pool_connection_seconds", "time spent establishing connections", 1e-3),
    "connections_errors": ("flashsale_pool_connection_errors", "failed connection attempts", 1),
    "connections_lost": ("flashsale_pool_connections_lost", "connections found broken", 1),
}
STRATEGY_EVENTS = ("flashsale_strategy_events", "events counted by the order strategy")
GUARD_OPEN = ("flashsale_database_circuit_open", "1 while requests are refused because the database is lost")
GUARD_COUNTERS = {
    "trips": ("flashsale_database_circuit_trips", "times the database was found lost"),
    "refused": ("flashsale_database_circuit_refused", "requests refused at once while it was lost"),
    "open_s": ("flashsale_database_circuit_open_seconds", "time spent refusing requests"),
}
SERVICE_WORKERS = ("flashsale_service_workers", "server processes serving requests (flashsale serve --workers)")


class PoolCollector(Collector):
    def __init__(self, pool: Callable[[], AsyncConnectionPool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        if pool is None:
            return
        stats = pool.get_stats()
        for key, (name, doc) in POOL_GAUGES.items():
            family = GaugeMetricFamily(name, doc, labels=["pool"])
            family.add_metric([pool.name], stats.get(key, 0))
            yield family
        for key, (name, doc, scale) in POOL_COUNTERS.items():
            counter = CounterMetricFamily(name, doc, labels=["pool"])
            counter.add_metric([pool.name], stats.get(key, 0) * scale)
            yield counter


class StrategyCollector(Collector):
    """What the strategy counts itself (retries, conflicts, queue rejections, ...)."""

    def __init__(self, strategy: OrderStrategy) -> None:
        self._strategy = strategy

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(*STRATEGY_EVENTS, labels=["strategy", "event"])
        for event, count in sorted(self._strategy.counters.items()):
            family.add_metric([self._strategy.name, event], count)
        yield family


class GuardCollector(Collector):
    """The database circuit breaker: open or not, how often it opened, how many calls it refused, time open."""

    def __init__(self, guard: Callable[[], DatabaseGuard | None]) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        guard = self._guard()
        if guard is None:
            return
        stats = guard.stats()
        yield GaugeMetricFamily(*GUARD_OPEN, stats["open"])
        for key, (name, doc) in GUARD_COUNTERS.items():
            yield CounterMetricFamily(name, doc, stats[key])


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
        # Set to 1 while this process serves: summed over the live processes in multiprocess mode.
        self.workers = Gauge(*SERVICE_WORKERS, registry=self.registry, multiprocess_mode="livesum")
        self._strategy_name = strategy.name
        self.shared: SharedMetrics | None = None
        if shared:
            from flashsale.http.shared_metrics import SharedMetrics

            self.shared = SharedMetrics(strategy, pool, guard)
        else:
            self.registry.register(PoolCollector(pool))
            self.registry.register(StrategyCollector(strategy))
            self.registry.register(GuardCollector(guard))
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
