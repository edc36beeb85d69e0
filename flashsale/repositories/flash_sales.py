from __future__ import annotations

from datetime import datetime
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import FlashSale
from flashsale.records import FlashSaleRecord

_COLUMNS = "id, product_id, starts_at, ends_at, total_inventory, remaining_inventory, per_user_limit, created_at"


async def get(conn: AsyncConnection, sale_id: UUID) -> FlashSale | None:
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    record = await (await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s", [sale_id])).fetchone()
    return record.to_domain() if record else None


async def get_for_update(conn: AsyncConnection, sale_id: UUID) -> FlashSale | None:
    """Read the sale and lock its row until the caller's transaction ends (the seed's naive lock)."""
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s FOR UPDATE", [sale_id])
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def decrement_remaining(conn: AsyncConnection, sale_id: UUID, quantity: int) -> None:
    await conn.execute(
        "UPDATE flash_sales SET remaining_inventory = remaining_inventory - %s WHERE id = %s", [quantity, sale_id]
    )


async def insert(
    conn: AsyncConnection,
    *,
    product_id: UUID,
    starts_at: datetime,
    ends_at: datetime,
    inventory: int,
    per_user_limit: int,
) -> FlashSale:
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(
        "INSERT INTO flash_sales (product_id, starts_at, ends_at, total_inventory, remaining_inventory, per_user_limit)"
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        [product_id, starts_at, ends_at, inventory, inventory, per_user_limit],
    )
    return (await cur.fetchone()).to_domain()


async def list_all(conn: AsyncConnection) -> list[FlashSale]:
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales ORDER BY created_at")
    return [record.to_domain() for record in await cur.fetchall()]
