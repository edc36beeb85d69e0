from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import Order, OrderStatus
from flashsale.records import OrderRecord

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
