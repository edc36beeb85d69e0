"""The seed's naive flow: lock the sale's single inventory row for the whole order transaction."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from uuid import UUID

from psycopg import AsyncConnection, errors

from flashsale.domain import DomainError, FlashSale, Order, PlaceOrder, SaleNotFound, UserNotFound, utc_now

__all__ = ["Pessimistic", "create_order", "utc_now"]  # utc_now: where callers used to import it from
from flashsale.repositories import flash_sales, orders
from flashsale.repositories.pending import Pending
from flashsale.strategies.base import OrderStrategy
from flashsale.strategies.pipelined import Pipeline, pipelined_transaction


async def create_order(
    conn: AsyncConnection,
    command: PlaceOrder,
    *,
    clock: Callable[[], datetime] = utc_now,
    lock: Callable[[Pipeline, UUID], Awaitable[Pending[FlashSale]]] = flash_sales.send_get_for_update,
    counters: Counter[str] | None = None,
) -> Order:
    """Begin; SELECT ... FOR UPDATE the sale; check window, stock and the user's limit; decrement; insert the
    order as CONFIRMED; commit. Any failure rolls the whole transaction back.

    The statements are the seed's, in two round trips (see `pipelined_transaction`): BEGIN, the locking SELECT and
    the read of the user's confirmed units travel together (that read runs once the lock is held, with a snapshot
    of its own, so it sees what the previous lock holder committed); the UPDATE, the INSERT and COMMIT travel
    together. The row stays locked while the client checks the order, as in the seed, but across one round trip
    instead of five. A refused order commits its read-only transaction (see `pipelined`: why refused orders
    commit). `lock` sends the locking read (`pessimistic_nowait` passes the NOWAIT one).

    With `counters`, the time the lock was held as the client sees it (from the locked row's arrival to the
    commit's answer: the client's turn, the second round trip and the commit) is added to `lock_hold_ns`, and
    `lock_holds` counts the orders: the load runner reports their ratio as `lock_hold_ms`.
    """
    refused: DomainError | None = None
    locked_at = 0
    try:
        async with pipelined_transaction(conn) as tx:
            locked = await lock(tx, command.flash_sale_id)
            bought = await orders.confirmed_quantity(tx, user_id=command.user_id, flash_sale_id=command.flash_sale_id)
            sale = await locked.one()
            locked_at = time.perf_counter_ns()
            try:
                if sale is None:
                    raise SaleNotFound(command.flash_sale_id)
                sale.check_order(quantity=command.quantity, already_bought=bought, now=clock())
            except DomainError as exc:
                refused = exc
            else:
                await flash_sales.decrement_remaining(tx, sale.id, command.quantity)
                inserted = await orders.send_insert_confirmed(tx, command)
    except errors.ForeignKeyViolation as exc:
        raise UserNotFound(command.user_id) from exc
    if counters is not None and locked_at:
        counters["lock_hold_ns"] += time.perf_counter_ns() - locked_at
        counters["lock_holds"] += 1
    if refused is not None:
        raise refused
    return await inserted.only()


class Pessimistic(OrderStrategy):
    """Parameters: `clock` (the time the sale window is checked against).

    Counters: `lock_hold_ns` and `lock_holds` (see `create_order`).
    """

    name = "pessimistic"
    safe = True
    summary = (
        "The seed's naive design. Each order opens a transaction, locks the flash sale's single inventory row "
        "with SELECT ... FOR UPDATE, checks the sale window, the remaining stock and the user's confirmed "
        "quantity against the per-user limit, decrements the row, inserts the order as CONFIRMED and commits. "
        "Correct by construction, but every order for a sale queues on that one row lock, so throughput is "
        "capped at 1 / (time the lock is held): a round trip to the client, the checks in Python and the commit "
        "flush (the statements are pipelined into two round trips; the lock is held across the second)."
    )
    pgbench_note = (
        "BEGIN alone before the lock; the user's units are read by the UPDATE and INSERT, not the first round trip"
    )

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        return await create_order(conn, command, clock=self.clock, counters=self.counters)
