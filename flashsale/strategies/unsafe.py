"""Read, check, write, with no lock at all: the lost update the audit exists to catch."""

from __future__ import annotations

import asyncio

from psycopg import AsyncConnection, errors

from flashsale.domain import Clock, Order, PlaceOrder, SaleNotFound, UserNotFound, utc_now
from flashsale.repositories import flash_sales, orders
from flashsale.strategies.base import OrderStrategy
from flashsale.strategies.pipelined import pipelined_transaction


class Unsafe(OrderStrategy):
    """Parameters: `race_delay_s` (default 0), a sleep between the read and the write that widens the race
    window so that tests can make buyers collide deterministically; `clock`.

    Counters: none (its failures are found by the audit, not by the strategy).
    """

    name = "unsafe"
    safe = False
    summary = (
        "UNSAFE, for demonstration only. Reads the sale and the user's confirmed units without a lock, checks in "
        "Python, then writes remaining = (the value it read - q) and inserts the order. Two buyers who read the "
        "same value both succeed and one decrement is lost: the sale is oversold and users can exceed the limit. "
        "It is as fast as two plain round trips can be, and it shows what the audit catches: oversold units, an "
        "inventory row that disagrees with the orders, limit violations."
    )
    pgbench_matched = True
    pgbench_note = "exact round trips (read, then one pipeline); now() stands for the driver's clock"

    def __init__(self, *, race_delay_s: float = 0.0, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        if race_delay_s < 0:
            raise ValueError(f"race_delay_s must be 0 or more, got {race_delay_s}")
        self.race_delay_s = race_delay_s

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        seen = await flash_sales.read_for_order(conn, command.flash_sale_id, command.user_id)
        if seen is None:
            raise SaleNotFound(command.flash_sale_id)
        seen.to_domain().check_order(quantity=command.quantity, already_bought=seen.bought, now=self.clock())
        if self.race_delay_s:
            await asyncio.sleep(self.race_delay_s)
        try:
            async with pipelined_transaction(conn) as tx:
                await flash_sales.set_remaining(tx, command.flash_sale_id, seen.remaining_inventory - command.quantity)
                inserted = await orders.send_insert_confirmed(tx, command)
        except errors.ForeignKeyViolation as exc:
            raise UserNotFound(command.user_id) from exc
        return await inserted.only()
