"""One conditional statement takes the stock and inserts the order: the row lock lasts one statement."""

from __future__ import annotations

from psycopg import AsyncConnection, errors

from flashsale.domain import Order, PlaceOrder, UserNotFound
from flashsale.repositories import locks, placements
from flashsale.strategies import refusals
from flashsale.strategies.base import Busy, OrderStrategy
from flashsale.strategies.pipelined import pipelined_transaction

# A refusal the follow-up read cannot explain (the sale opened between the two) is tried again this often.
_ATTEMPTS = 3


class Atomic(OrderStrategy):
    """Parameters: `clock` (the time the statement checks the sale window against, and a refusal is explained
    against).

    Counters: `refusals_explained` (statements that took nothing and a read said why).
    """

    name = "atomic"
    safe = True
    summary = (
        "A single conditional statement: UPDATE flash_sales SET remaining = remaining - q WHERE id = $1 AND "
        "remaining >= q AND the sale is open AND the user's confirmed units + q <= the limit, with the order "
        "INSERTed from its RETURNING in the same statement. A per-(sale, user) advisory lock taken just before "
        "makes that limit check exact under concurrency. BEGIN, lock, statement and COMMIT travel in one "
        "pipelined round trip, so the row lock is held only while the server runs the statement and commits, "
        "never while it waits on the client. An empty result is a refusal, explained by a follow-up read. Still "
        "one hot row: throughput is bounded by 1 / (statement + commit flush), not by client round trips."
    )
    pgbench_matched = True
    pgbench_note = "exact round trip (one pipeline); now() stands for the driver's clock; refusals are not explained"

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        for _ in range(_ATTEMPTS):
            try:
                async with pipelined_transaction(conn) as tx:
                    await locks.lock_buyer(tx, command.flash_sale_id, command.user_id)
                    taken = await placements.send_take_stock(tx, command, now=self.clock())
            except errors.ForeignKeyViolation as exc:
                raise UserNotFound(command.user_id) from exc
            if (order := await taken.one()) is not None:
                return order
            self.counters["refusals_explained"] += 1
            await refusals.explain(conn, command, clock=self.clock)
        raise Busy(f"order refused {_ATTEMPTS} times without a reason found", retry_after_s=0.1)
