from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import Order, OrderStatus
from flashsale.records import OrderRecord
from flashsale.repositories.pending import Pending

_COLUMNS = "id, user_id, flash_sale_id, quantity, status, created_at"


async def insert(
    conn: AsyncConnection, *, user_id: UUID, flash_sale_id: UUID, quantity: int, status: OrderStatus
) -> Order:
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        f"INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
        [user_id, flash_sale_id, quantity, status.value],
    )
    return (await cur.fetchone()).to_domain()


async def send_insert(
    conn: AsyncConnection, *, user_id: UUID, flash_sale_id: UUID, quantity: int, status: OrderStatus
) -> Pending[Order]:
    """As `insert`, for pipelined flows that commit before they read the row (see `Pending`)."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        f"INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
        [user_id, flash_sale_id, quantity, status.value],
    )
    return Pending(cur, OrderRecord.to_domain)


async def send_insert_many(
    conn: AsyncConnection,
    *,
    flash_sale_id: UUID,
    ids: list[UUID],
    user_ids: list[UUID],
    quantities: list[int],
    status: OrderStatus,
) -> Pending[Order]:
    """Insert one order per (id, user, quantity) in one statement; the rows are read later (see `Pending`)."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        "INSERT INTO orders (id, user_id, flash_sale_id, quantity, status)"
        " SELECT id, user_id, %s, quantity, %s FROM unnest(%s::uuid[], %s::uuid[], %s::int[])"
        " AS o (id, user_id, quantity)"
        f" RETURNING {_COLUMNS}",
        [flash_sale_id, status.value, ids, user_ids, quantities],
    )
    return Pending(cur, OrderRecord.to_domain)


async def send_bought_by_users(
    conn: AsyncConnection, flash_sale_id: UUID, user_ids: list[UUID]
) -> Pending[tuple[UUID, int]]:
    """(user id, units held in confirmed orders of this sale) for each of these users that exists: a user
    missing from the answer does not exist."""
    cur = await conn.execute(
        "SELECT u.id, coalesce(sum(o.quantity), 0)::int FROM users u"
        " LEFT JOIN orders o ON o.user_id = u.id AND o.flash_sale_id = %s AND o.status = 'CONFIRMED'"
        " WHERE u.id = ANY(%s) GROUP BY u.id",
        [flash_sale_id, user_ids],
    )
    return Pending(cur, tuple)


async def confirmed_quantity(conn: AsyncConnection, *, user_id: UUID, flash_sale_id: UUID) -> int:
    """How many units this user already holds in confirmed orders of this sale."""
    cur = await conn.execute(
        "SELECT coalesce(sum(quantity), 0)::int FROM orders"
        " WHERE user_id = %s AND flash_sale_id = %s AND status = 'CONFIRMED'",
        [user_id, flash_sale_id],
    )
    return (await cur.fetchone())[0]


async def get(conn: AsyncConnection, order_id: UUID) -> Order | None:
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    record = await (await cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", [order_id])).fetchone()
    return record.to_domain() if record else None


async def list_for_sale(conn: AsyncConnection, flash_sale_id: UUID) -> list[Order]:
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE flash_sale_id = %s ORDER BY created_at", [flash_sale_id])
    return [record.to_domain() for record in await cur.fetchall()]
