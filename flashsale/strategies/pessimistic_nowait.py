"""The seed's flow, but a locked row is a reason to back off rather than to queue."""

from __future__ import annotations

from psycopg import AsyncConnection, errors

from flashsale.domain import Order, PlaceOrder
from flashsale.repositories import flash_sales
from flashsale.strategies import pessimistic
from flashsale.strategies.retry import RetryStrategy


class PessimisticNowait(RetryStrategy):
    """Parameters: `retries` (default 8) retries after the first attempt, `backoff_s` (default 0.001) the first
    backoff's upper bound, doubling up to `max_backoff_s` (default 0.05), `clock` (the time the sale window is checked
    against).

    Counters: `lock_not_available` (every attempt that found the row locked), `retries`, `busy` (orders given up),
    `lock_hold_ns` and `lock_holds` (see `pessimistic.create_order`).
    """

    name = "pessimistic_nowait"
    conflict = "lock_not_available"
    lost = (errors.LockNotAvailable,)
    gave_up = "flash sale {sale} stayed locked through"
    default_retries = 8
    safe = True
    summary = (
        "The seed's flow with SELECT ... FOR UPDATE NOWAIT: an order that finds the sale row locked does not "
        "queue in the database but fails at once (lock_not_available), rolls back, sleeps a jittered exponential "
        "backoff and retries, up to a bound; then it answers `busy` (HTTP 503 with Retry-After). Limit and stock "
        "checks run under the row lock, as in `pessimistic`. It trades the lock queue for failed attempts: "
        "connections are never parked on the lock, latency is bounded, but under contention most attempts "
        "are wasted round trips and the throughput is at best that of `pessimistic`."
    )
    pgbench_note = "as pessimistic, with SKIP LOCKED for NOWAIT; a failed attempt sells nothing, no backoff or retry"

    async def attempt(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        """The seed's flow, taking the row lock with NOWAIT (`LockNotAvailable`: lost)."""
        lock = flash_sales.send_get_for_update_nowait
        return await pessimistic.create_order(conn, command, clock=self.clock, lock=lock, counters=self.counters)
