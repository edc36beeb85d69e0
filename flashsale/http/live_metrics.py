"""What the service reads from live objects when it is scraped: the connection pool's `get_stats()`, the order
strategy's own counters, the database guard, and shared admission's breaker and stream (`--admission redis`).

`LiveObjects.read` is the one reader of those figures. A single process turns what it reads into metric families
at scrape time (`flashsale.http.metrics`); one of several workers mirrors it into multiprocess metrics of the same
names (`flashsale.http.shared_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from psycopg_pool import AsyncConnectionPool

from flashsale.db.guard import DatabaseGuard
from flashsale.strategies import OrderStrategy


@dataclass(frozen=True)
class Family:
    """A metric read from a live object. `merge`: how one of several workers' gauges add up (prometheus-client's
    `multiprocess_mode`); counters are summed."""

    name: str
    doc: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...] = ()
    merge: Literal["livesum", "livemax"] = "livesum"


Sample = tuple[tuple[str, ...], float]  # label values, value

# psycopg_pool's get_stats() keys: instant measures become gauges, running counts become counters (ms as seconds).
POOL_GAUGES = {
    key: Family(name, doc, "gauge", ("pool",))
    for key, name, doc in [
        ("pool_min", "flashsale_pool_min_connections", "pool min_size"),
        ("pool_max", "flashsale_pool_max_connections", "pool max_size"),
        ("pool_size", "flashsale_pool_connections", "connections currently managed by the pool"),
        ("pool_available", "flashsale_pool_available_connections", "connections idle in the pool"),
        ("requests_waiting", "flashsale_pool_requests_waiting", "requests waiting for a connection now"),
    ]
}
POOL_COUNTERS = {
    key: (Family(name, doc, "counter", ("pool",)), scale)
    for key, name, doc, scale in [
        ("requests_num", "flashsale_pool_requests", "connections requested from the pool", 1),
        ("requests_queued", "flashsale_pool_requests_queued", "requests that had to wait for a connection", 1),
        ("requests_wait_ms", "flashsale_pool_requests_wait_seconds", "time spent waiting for a connection", 1e-3),
        ("requests_errors", "flashsale_pool_requests_errors", "requests that got no connection (timeout, ...)", 1),
        ("usage_ms", "flashsale_pool_usage_seconds", "time connections were out of the pool", 1e-3),
        ("returns_bad", "flashsale_pool_returns_bad", "connections returned in a bad state", 1),
        ("connections_num", "flashsale_pool_connection_attempts", "connection attempts to the server", 1),
        ("connections_ms", "flashsale_pool_connection_seconds", "time spent establishing connections", 1e-3),
        ("connections_errors", "flashsale_pool_connection_errors", "failed connection attempts", 1),
        ("connections_lost", "flashsale_pool_connections_lost", "connections found broken", 1),
    ]
}
STRATEGY_EVENTS = Family(
    "flashsale_strategy_events", "events counted by the order strategy", "counter", ("strategy", "event")
)
# Several workers: open while it is open in any of them.
GUARD_OPEN = Family(
    "flashsale_database_circuit_open",
    "1 while requests are refused because the database is lost",
    "gauge",
    merge="livemax",
)
GUARD_COUNTERS = {
    key: Family(name, doc, "counter")
    for key, name, doc in [
        ("trips", "flashsale_database_circuit_trips", "times the database was found lost"),
        ("refused", "flashsale_database_circuit_refused", "requests refused at once while it was lost"),
        ("open_s", "flashsale_database_circuit_open_seconds", "time spent refusing requests"),
    ]
}
# serve --admission redis: the Redis breaker and the order stream (SharedAdmission.stats, StreamSettlers.stats).
ADMISSION_COUNTERS = {
    key: Family(name, doc, "counter")
    for key, name, doc in [
        ("trips", "flashsale_redis_circuit_trips", "times Redis was found lost and admission fell back to local"),
        ("open_s", "flashsale_redis_circuit_open_seconds", "time spent on the local share of the limits"),
        ("fallbacks", "flashsale_admission_fallbacks", "admission calls answered by the local share, not Redis"),
        ("enqueued", "flashsale_order_stream_added", "accepted orders put on the shared order stream"),
        ("kept_local", "flashsale_order_stream_kept_local", "accepted orders settled by their own process instead"),
        ("settled", "flashsale_order_stream_settled", "stream entries settled and acknowledged by this process"),
        ("claimed", "flashsale_order_stream_claimed", "stream entries taken over from a consumer that left them"),
        ("postponed", "flashsale_order_stream_postponed", "stream settlements that failed, left to be claimed again"),
    ]
}
FAMILIES = [
    *POOL_GAUGES.values(),
    *(family for family, _ in POOL_COUNTERS.values()),
    STRATEGY_EVENTS,
    GUARD_OPEN,
    *GUARD_COUNTERS.values(),
    *ADMISSION_COUNTERS.values(),
]


@dataclass(frozen=True)
class LiveObjects:
    """What a service process reads its live figures from: the pool and the guard exist once the lifespan has
    opened them, so they are asked for at each read."""

    strategy: OrderStrategy
    pool: Callable[[], AsyncConnectionPool | None]
    guard: Callable[[], DatabaseGuard | None]
    admission: Callable[[], dict[str, float]] = dict  # shared admission's figures ({} without it)

    def read(self) -> list[tuple[Family, list[Sample]]]:
        """Every family with its samples now: the pool's and the guard's only while they exist, the strategy's
        always (no samples before it counts anything)."""
        read_now: list[tuple[Family, list[Sample]]] = []
        if (pool := self.pool()) is not None:
            stats = pool.get_stats()
            read_now += [(family, [((pool.name,), stats.get(key, 0))]) for key, family in POOL_GAUGES.items()]
            read_now += [
                (family, [((pool.name,), stats.get(key, 0) * scale)]) for key, (family, scale) in POOL_COUNTERS.items()
            ]
        counted = sorted(self.strategy.counters.items())
        read_now.append((STRATEGY_EVENTS, [((self.strategy.name, event), count) for event, count in counted]))
        if (guard := self.guard()) is not None:
            guard_stats = guard.stats()
            read_now.append((GUARD_OPEN, [((), guard_stats["open"])]))
            read_now += [(family, [((), guard_stats[key])]) for key, family in GUARD_COUNTERS.items()]
        if admission_stats := self.admission():
            read_now += [
                (family, [((), admission_stats[key])])
                for key, family in ADMISSION_COUNTERS.items()
                if key in admission_stats
            ]
        return read_now
