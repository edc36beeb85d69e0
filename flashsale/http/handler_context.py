"""What the handlers share (`HandlerContext`, found with `context_of(request)`): the strategy, the pool (open between
startup and shutdown), the database guard, the metrics, and the admission control in front of the strategy (a per-user
rate limiter and an order queue, both optional, per process or shared through Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from flashsale.admission import OrderQueue, QueueStopped, RateLimited, UserRateLimiter
from flashsale.db.guard import DatabaseGuard
from flashsale.domain import PlaceOrder, SaleNotActive
from flashsale.http.metrics import Metrics
from flashsale.services import idempotency, settlement
from flashsale.services.sale_windows import SaleWindows
from flashsale.strategies import OrderStrategy

if TYPE_CHECKING:  # redis-py is imported by the services that share admission, not by every `flashsale` start
    from flashsale.admission.shared import SharedAdmission
    from flashsale.services.stream_settlement import StreamSettlers


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class HandlerContext:
    strategy: OrderStrategy
    metrics: Metrics = field(init=False)
    pool: AsyncConnectionPool | None = None
    guard: DatabaseGuard | None = None
    clock: Callable[[], datetime] = utc_now
    shared_metrics: bool = False  # one of several worker processes (see flashsale.http.shared_metrics)
    rate_limiter: UserRateLimiter | None = None
    order_queue: OrderQueue | None = None  # made and started by the lifespan when the service has one
    settler: settlement.Settler | None = None  # serve --accept async: orders are accepted, then settled
    sale_windows: SaleWindows | None = None  # serve --accept async: orders for a sale not open are refused at once
    shared: SharedAdmission | None = None  # serve --admission redis: the rate limit (and async queue) in Redis
    stream_settlers: StreamSettlers | None = None  # --admission redis --accept async: the stream's consumers

    def __post_init__(self) -> None:
        self.metrics = Metrics(
            self.strategy,
            lambda: self.pool,
            lambda: self.guard,
            shared=self.shared_metrics,
            admission=self.admission_stats,
        )

    def admission_stats(self) -> dict[str, float]:
        """Shared admission's figures (`--admission redis`): its breaker, its stream and this process's settlers."""
        stats: dict[str, float] = {}
        if self.shared is not None:
            stats.update(self.shared.stats())
        if self.stream_settlers is not None:
            stats.update(self.stream_settlers.stats())
        return stats

    @property
    def open_pool(self) -> AsyncConnectionPool:
        """The pool; raises `DatabaseDown` (a 503) at once while the database guard's circuit is open."""
        if self.pool is None:  # pragma: no cover - Starlette serves no request before the lifespan has started
            raise RuntimeError("the service is not started")
        if self.guard is not None:
            self.guard.check()
        return self.pool

    async def admit(self, command: PlaceOrder) -> None:
        """Refuse the order (`RateLimited`) if its user is over the per-user rate; nothing else is touched."""
        try:
            if self.shared is not None:
                await self.shared.admit(command.user_id)
            elif self.rate_limiter is not None:
                self.rate_limiter.admit(command.user_id)
        except RateLimited:
            self.metrics.rate_limited.inc()
            raise

    async def place_order(self, command: PlaceOrder) -> idempotency.Placement:
        """The order placed through the strategy (at most once per idempotency key), by one of the order queue's
        workers when there is a queue (a full queue raises `QueueFull` at once)."""
        pool = self.open_pool  # while the database is lost, refuse before taking a place in the queue
        if self.order_queue is None:
            return await idempotency.place_order(self.strategy, pool, command)
        started = False

        async def place() -> idempotency.Placement:
            nonlocal started
            started = True
            return await idempotency.place_order(self.strategy, self.open_pool, command)

        try:
            return await self.order_queue.run(place)
        except asyncio.CancelledError:
            # uvicorn cancels the requests left when SIGTERM's drain times out. A job whose caller has gone before
            # a worker took it never runs: say that it was not placed (503), not a 500 that leaves the client
            # unsure. One a worker had begun is answered when it ends (OrderQueue.run); if the stop margin ran out
            # first, it was cut with its query, and nothing more can be said of it here.
            if started or (task := asyncio.current_task()) is None:
                raise
            task.uncancel()
            raise QueueStopped("the service stopped before the order left the queue; it was not placed") from None

    async def accept_order(self, command: PlaceOrder) -> idempotency.Placement:
        """`--accept async`: a place in the queue (else `QueueFull` at once), the order stored as PENDING (or the
        one its key already has), its settlement scheduled: on the shared stream (`--admission redis`), else (or
        while Redis is away) in this process's queue."""
        if self.order_queue is None or self.settler is None:  # pragma: no cover - create_app requires both
            raise RuntimeError("asynchronous orders need the order queue")
        if self.shared is not None:
            await self.shared.check_room()
        else:
            self.order_queue.check_room()
        pool = self.open_pool
        if self.sale_windows is not None and await self.sale_windows.is_open(pool, command.flash_sale_id) is False:
            return await settlement.refuse(pool, command, SaleNotActive(command.flash_sale_id))  # or a key's replay
        placed = await settlement.accept(pool, command)
        if not placed.replayed and (self.shared is None or not await self.shared.enqueue(placed.order.id)):
            self.settler.schedule(placed.order.id)  # if the queue filled meanwhile, the sweep settles it
        return placed


def context_of(request: Request) -> HandlerContext:
    return request.app.state.context
