"""The seed's flow, but a locked row is a reason to back off rather than to queue."""

from __future__ import annotations

from psycopg import AsyncConnection, errors

from flashsale.domain import Order, PlaceOrder
from flashsale.repositories import flash_sales
from flashsale.strategies import pessimistic
from flashsale.strategies.base import Busy, OrderStrategy
from flashsale.strategies.retry import Backoff, check_retries


class PessimisticNowait(OrderStrategy):
    """Parameters: `retries` (default 8) retries after the first attempt, `backoff_s` (default 0.001) the first
    backoff's upper bound, doubling up to `max_backoff_s` (default 0.05).

    Counters: `lock_not_available` (every attempt that found the row locked), `retries`, `busy` (orders given up),
    `lock_hold_ns` and `lock_holds` (see `pessimistic.create_order`).
    """

    name = "pessimistic_nowait"
    safe = True
    summary = (
        "The seed's flow with SELECT ... FOR UPDATE NOWAIT: an order that finds the sale row locked does not "
        "queue in the database but fails at once (lock_not_available), rolls back, sleeps a jittered exponential "
        "backoff and retries, up to a bound; then it answers `busy` (HTTP 503 with Retry-After). Limit and stock "
        "checks run under the row lock, as in `pessimistic`. It trades the lock queue for failed attempts: "
        "connections are never parked on the lock, latency is bounded, but under contention most attempts "
        "are wasted round trips and the throughput is at best that of `pessimistic`."
    )

    def __init__(self, *, retries: int = 8, backoff_s: float = 0.001, max_backoff_s: float = 0.05) -> None:
        super().__init__()
        self.retries = check_retries(retries)
        self.backoff = Backoff(backoff_s, max_backoff_s)

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters["retries"] += 1
                await self.backoff.sleep(attempt - 1)
            try:
                return await pessimistic.create_order(
                    conn, command, lock=flash_sales.send_get_for_update_nowait, counters=self.counters
                )
            except errors.LockNotAvailable:
                self.counters["lock_not_available"] += 1
        self.counters["busy"] += 1
        raise Busy(
            f"flash sale {command.flash_sale_id} stayed locked through {self.retries + 1} attempts",
            retry_after_s=max(self.backoff.cap_s, 0.001),
        )
