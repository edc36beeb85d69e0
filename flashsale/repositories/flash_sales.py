from __future__ import annotations

from datetime import datetime
from uuid import UUID

from psycopg.rows import class_row

from flashsale.db.pipeline import Conn
from flashsale.domain import FlashSale
from flashsale.repositories.pending import Pending, fetch_one
from flashsale.repositories.rows import FlashSaleRecord, SaleSnapshotRecord

_COLUMNS = "id, product_id, starts_at, ends_at, total_inventory, remaining_inventory, per_user_limit, created_at"


async def get(conn: Conn, sale_id: UUID) -> FlashSale | None:
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    record = await (await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s", [sale_id])).fetchone()
    return record.to_domain() if record else None


async def get_for_update(conn: Conn, sale_id: UUID) -> FlashSale | None:
    """Read the sale and lock its row until the caller's transaction ends (the seed's naive lock)."""
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s FOR UPDATE", [sale_id])
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def send_get_for_update(conn: Conn, sale_id: UUID) -> Pending[FlashSale]:
    """As `get_for_update`, read later: statements queued after it in a pipeline run once the lock is held."""
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s FOR UPDATE", [sale_id])
    return Pending(cur, FlashSaleRecord.to_domain)


async def send_get_for_update_nowait(conn: Conn, sale_id: UUID) -> Pending[FlashSale]:
    """As `send_get_for_update`, but the statement fails with `LockNotAvailable` instead of queueing behind the
    lock holder (raised when the pipeline syncs)."""
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s FOR UPDATE NOWAIT", [sale_id])
    return Pending(cur, FlashSaleRecord.to_domain)


async def get_for_no_key_update(conn: Conn, sale_id: UUID) -> FlashSale | None:
    """Read the sale and lock its row against other writers, without blocking order inserts (their foreign-key
    check only needs FOR KEY SHARE, which this lock allows)."""
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales WHERE id = %s FOR NO KEY UPDATE", [sale_id])
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def read_for_order(conn: Conn, sale_id: UUID, user_id: UUID) -> SaleSnapshotRecord | None:
    """The sale, its version and the units this user already holds, without a lock and from one snapshot
    (so an order committed after the read is sure to have bumped the version the caller then checks)."""
    cur = conn.cursor(row_factory=class_row(SaleSnapshotRecord))
    await cur.execute(
        f"SELECT {_COLUMNS}, version,"
        " (SELECT coalesce(sum(quantity), 0)::int FROM orders"
        "   WHERE user_id = %(user)s AND flash_sale_id = %(sale)s AND status = 'CONFIRMED') AS bought"
        " FROM flash_sales WHERE id = %(sale)s",
        {"sale": sale_id, "user": user_id},
    )
    return await cur.fetchone()


async def decrement_remaining(conn: Conn, sale_id: UUID, quantity: int) -> None:
    await conn.execute(
        "UPDATE flash_sales SET remaining_inventory = remaining_inventory - %s WHERE id = %s", [quantity, sale_id]
    )


async def set_remaining(conn: Conn, sale_id: UUID, remaining: int) -> None:
    """Overwrite the remaining units with a value the caller computed (a blind write: no check, no lock)."""
    await conn.execute("UPDATE flash_sales SET remaining_inventory = %s WHERE id = %s", [remaining, sale_id])


async def set_window(conn: Conn, sale_id: UUID, starts_at: datetime, ends_at: datetime) -> None:
    """Move the sale's window (a load run opens the sale at a chosen instant of the run)."""
    await conn.execute(
        "UPDATE flash_sales SET starts_at = %s, ends_at = %s WHERE id = %s", [starts_at, ends_at, sale_id]
    )


async def insert(
    conn: Conn,
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
    return (await fetch_one(cur)).to_domain()


async def list_all(conn: Conn) -> list[FlashSale]:
    cur = conn.cursor(row_factory=class_row(FlashSaleRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM flash_sales ORDER BY created_at")
    return [record.to_domain() for record in await cur.fetchall()]
