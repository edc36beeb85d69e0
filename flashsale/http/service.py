"""What the handlers share: the strategy, the pool (open between startup and shutdown), the database guard, the
metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from flashsale.db.guard import DatabaseGuard
from flashsale.http.metrics import Metrics
from flashsale.strategies import OrderStrategy


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Service:
    strategy: OrderStrategy
    metrics: Metrics = field(init=False)
    pool: AsyncConnectionPool | None = None
    guard: DatabaseGuard | None = None
    clock: Callable[[], datetime] = utc_now
    shared_metrics: bool = False  # one of several worker processes (see flashsale.http.shared_metrics)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.strategy, lambda: self.pool, lambda: self.guard, shared=self.shared_metrics)

    @property
    def open_pool(self) -> AsyncConnectionPool:
        """The pool; raises `DatabaseDown` (a 503) at once while the database guard's circuit is open."""
        if self.pool is None:  # pragma: no cover - Starlette serves no request before the lifespan has started
            raise RuntimeError("the service is not started")
        if self.guard is not None:
            self.guard.check()
        return self.pool


def service_of(request: Request) -> Service:
    return request.app.state.service
