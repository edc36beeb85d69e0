"""Asynchronous orders (migration 0005): storing an accepted order as PENDING, claiming it for settlement, and
turning it CONFIRMED or FAILED. One statement each, on the connection given; the caller owns the transaction
(see `flashsale.services.settlement`)."""

from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import Order
from flashsale.repositories.pending import fetch_one
from flashsale.repositories.rows import OrderRecord

_COLUMNS = "id, user_id, flash_sale_id, quantity, status, created_at, failure_reason"


async def insert_pending(
    conn: AsyncConnection, *, user_id: UUID, flash_sale_id: UUID, quantity: int, idempotency_key: str | None
) -> Order:
    """Record an accepted order as PENDING, with the client's idempotency key (unique: a retry cannot add one)."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        "INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)"
        f" VALUES (%s, %s, %s, 'PENDING', %s) RETURNING {_COLUMNS}",
        [user_id, flash_sale_id, quantity, idempotency_key],
    )
    return (await fetch_one(cur)).to_domain()


async def get(conn: AsyncConnection, order_id: UUID) -> Order | None:
    """The order with its failure reason."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", [order_id])
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def pending_ids(conn: AsyncConnection, *, limit: int, older_than_s: float = 0.0) -> list[UUID]:
    """Ids of orders still PENDING, oldest first, accepted at least `older_than_s` seconds ago."""
    cur = await conn.execute(
        "SELECT id FROM orders WHERE status = 'PENDING' AND created_at <= now() - make_interval(secs => %s)"
        " ORDER BY created_at LIMIT %s",
        [older_than_s, limit],
    )
    return [row[0] for row in await cur.fetchall()]


async def claim(conn: AsyncConnection, order_id: UUID) -> Order | None:
    """Lock the order if it is still PENDING and nobody else holds it (None otherwise): in a transaction, the
    claim lasts until it ends."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE id = %s AND status = 'PENDING' FOR UPDATE SKIP LOCKED", [order_id]
    )
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def confirm(conn: AsyncConnection, order_id: UUID, settlement_key: str) -> Order | None:
    """Move the settlement onto the pending order: the order the strategy placed under `settlement_key` (which
    holds the stock) is deleted and the pending order becomes CONFIRMED, in one statement, so that the confirmed
    units never change in between. None (and nothing changed) unless both exist."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        "WITH placed AS ("
        "  DELETE FROM orders WHERE idempotency_key = %(key)s AND status = 'CONFIRMED'"
        "   AND EXISTS (SELECT 1 FROM orders WHERE id = %(id)s AND status = 'PENDING')"
        "  RETURNING id"
        ")"
        " UPDATE orders SET status = 'CONFIRMED' WHERE id = %(id)s AND status = 'PENDING'"
        f" AND EXISTS (SELECT 1 FROM placed) RETURNING {_COLUMNS}",
        {"id": order_id, "key": settlement_key},
    )
    record = await cur.fetchone()
    return record.to_domain() if record else None


async def fail(conn: AsyncConnection, order_id: UUID, reason: str) -> Order | None:
    """Turn the pending order FAILED with `reason`; None if it was not pending."""
    cur = conn.cursor(row_factory=class_row(OrderRecord))
    await cur.execute(
        "UPDATE orders SET status = 'FAILED', failure_reason = %s WHERE id = %s AND status = 'PENDING'"
        f" RETURNING {_COLUMNS}",
        [reason, order_id],
    )
    record = await cur.fetchone()
    return record.to_domain() if record else None
