"""Why did a conditional statement take nothing? Strategies whose single statement checks everything at once
(`atomic`, `sharded`) learn only that it refused; this reads the sale and names the rule that forbids the order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from psycopg import AsyncConnection

from flashsale.domain import PlaceOrder, SaleNotFound
from flashsale.repositories import flash_sales, shards


async def explain(
    conn: AsyncConnection,
    command: PlaceOrder,
    *,
    clock: Callable[[], datetime],
    with_shards: bool = False,
) -> None:
    """Raise the domain error that forbids this order now, if any; returning means that no rule forbids it any
    more (the caller may try again). With `with_shards`, the units in the sale's shards count as remaining.

    Every figure read only moves one way (remaining down, a user's units up), so a refusal found here is final.
    The shards are read after the row: units moving from row to shards meanwhile are counted twice (no refusal,
    the caller tries again), never missed (which would be a false "sold out").
    """
    seen = await flash_sales.read_for_order(conn, command.flash_sale_id, command.user_id)
    if seen is None:
        raise SaleNotFound(command.flash_sale_id)
    sale = seen.to_domain()
    if with_shards:
        in_shards = await shards.total_remaining(conn, sale.id)
        sale = dataclasses.replace(sale, remaining_inventory=sale.remaining_inventory + in_shards)
    sale.check_order(quantity=command.quantity, already_bought=seen.bought, now=clock())
