"""Single statements that take stock and insert the order together: either both happen or neither does, and
the statement's own conditions decide. An empty answer means "refused"; the caller finds out why by reading.

Each returns the order as `orders.insert` does, or (`send_*`, for pipelined flows) a `Pending` order. The sale
window is checked against `now` (default: this machine's clock), the strategy's clock, not the database's `now()`.
"""

from __future__ import annotations

import random
from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row

from flashsale.db.pipeline import Conn
from flashsale.domain import Order, PlaceOrder, utc_now
from flashsale.repositories.pending import Pending, fetch_one
from flashsale.repositories.rows import OrderRecord, PlacementRecord

_RETURNING = "RETURNING id, user_id, flash_sale_id, quantity, status, created_at"

_BOUGHT = (
    "(SELECT coalesce(sum(quantity), 0) FROM orders"
    " WHERE user_id = %(user)s AND flash_sale_id = %(sale)s AND status = 'CONFIRMED')"
)

_TAKE_STOCK = f"""
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - %(quantity)s
     WHERE id = %(sale)s AND remaining_inventory >= %(quantity)s AND starts_at <= %(now)s AND %(now)s < ends_at
       AND {_BOUGHT} + %(quantity)s <= per_user_limit
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT %(user)s, id, %(quantity)s, 'CONFIRMED', %(key)s FROM sale
{_RETURNING}
"""


async def send_take_stock(conn: Conn, command: PlaceOrder, *, now: datetime | None = None) -> Pending[Order]:
    """Decrement the sale row if the sale is open at `now`, has the stock and the user stays within the limit; insert
    the order if it did. The caller must hold `locks.lock_buyer`: the limit check reads the orders as of the
    statement's start, and only that lock keeps the same user's other orders from committing meanwhile."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(_TAKE_STOCK, {**_params(command), "now": now or utc_now()})
    return Pending(cur, OrderRecord.to_domain)


_TAKE_ADMITTED = f"""
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - %(quantity)s
     WHERE id = %(sale)s AND gate_epoch = %(epoch)s
       AND remaining_inventory >= %(quantity)s AND starts_at <= %(now)s AND %(now)s < ends_at
       AND {_BOUGHT} + %(quantity)s <= per_user_limit
    RETURNING id
)
INSERT INTO orders (id, user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT %(id)s, %(user)s, id, %(quantity)s, 'CONFIRMED', %(key)s FROM sale
{_RETURNING}
"""


async def send_take_admitted(
    conn: Conn, command: PlaceOrder, *, order_id: UUID, epoch: int, now: datetime
) -> Pending[Order]:
    """Write an order a stock gate admitted at `epoch` (the instant `now`), as order `order_id`: the statement of
    `send_take_stock` (the database checks every rule again), and only while the sale is still at that gate epoch
    (see migration 0006). Same precondition (`locks.lock_buyer`)."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(_TAKE_ADMITTED, {**_params(command), "now": now, "epoch": epoch, "id": order_id})
    return Pending(cur, OrderRecord.to_domain)


# The shard order is a hash of (shard + a random spin sent with the statement), not random(): when the UPDATE has
# waited for a shard, PostgreSQL re-checks the row by re-running the subquery (EvalPlanQual), and random() would
# then name another shard, so that the statement took nothing although its shard had the units.
def _take_shard(lock: str) -> str:
    return f"""
WITH shard AS (
    UPDATE flash_sale_shards SET remaining = remaining - %(quantity)s
     WHERE flash_sale_id = %(sale)s AND remaining >= %(quantity)s AND shard = (
        SELECT s.shard FROM flash_sale_shards s JOIN flash_sales f ON f.id = s.flash_sale_id
         WHERE s.flash_sale_id = %(sale)s AND s.remaining >= %(quantity)s
           AND f.starts_at <= %(now)s AND %(now)s < f.ends_at
           AND {_BOUGHT} + %(quantity)s <= f.per_user_limit
         ORDER BY hashint4(s.shard + %(spin)s) LIMIT 1 {lock})
    RETURNING flash_sale_id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT %(user)s, flash_sale_id, %(quantity)s, 'CONFIRMED', %(key)s FROM shard
{_RETURNING}
"""


_TAKE_FREE_SHARD = _take_shard("FOR UPDATE OF s SKIP LOCKED")
_TAKE_ANY_SHARD = _take_shard("")


async def send_take_shard(
    conn: Conn, command: PlaceOrder, *, now: datetime | None = None, skip_locked: bool
) -> Pending[Order]:
    """Take the units from one shard that holds enough (the sale open at `now`), chosen at random (its own order for
    each call), and insert the order.

    With `skip_locked`, shards other orders hold are passed over and nothing waits. Without it, one shard is chosen
    without a lock and the UPDATE queues on it alone, then re-checks its units: the statement never holds a shard
    while it waits for another, so it cannot deadlock with the slow path, which locks every shard in order.
    Same precondition as `send_take_stock` (`locks.lock_buyer`).
    """
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    params = {**_params(command), "now": now or utc_now(), "spin": random.randrange(1 << 30)}
    await cur.execute(_TAKE_FREE_SHARD if skip_locked else _TAKE_ANY_SHARD, params)
    return Pending(cur, OrderRecord.to_domain)


_TAKE_VERSION = f"""
WITH sale AS (
    UPDATE flash_sales SET remaining_inventory = remaining_inventory - %(quantity)s
     WHERE id = %(sale)s AND version = %(version)s
    RETURNING id
)
INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)
SELECT %(user)s, id, %(quantity)s, 'CONFIRMED', %(key)s FROM sale
{_RETURNING}
"""


async def take_if_unchanged(conn: Conn, command: PlaceOrder, version: int) -> Order | None:
    """Decrement the sale row and insert the order only if the row is still at `version` (the row's trigger
    moves the version on with this change as with any other)."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(_TAKE_VERSION, {**_params(command), "version": version})
    record = await cur.fetchone()
    return record.to_domain() if record else None


_CALL_PLACE_ORDER = (
    "SELECT outcome, order_id, created_at, remaining, bought, per_user_limit FROM place_order(%s, %s, %s, %s, %s)"
)


async def call_place_order(conn: Conn, command: PlaceOrder, *, now: datetime | None = None) -> PlacementRecord:
    """The whole pessimistic flow inside the database, the sale window checked against `now` (see the `place_order`
    function in migrations 0002 to 0004)."""
    cur = conn.cursor(row_factory=class_row(PlacementRecord))
    await cur.execute(
        _CALL_PLACE_ORDER,
        [command.flash_sale_id, command.user_id, command.quantity, command.idempotency_key, now or utc_now()],
    )
    return await fetch_one(cur)


def _params(command: PlaceOrder) -> dict[str, UUID | int | str | None]:
    return {
        "sale": command.flash_sale_id,
        "user": command.user_id,
        "quantity": command.quantity,
        "key": command.idempotency_key,
    }
