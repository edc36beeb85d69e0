"""The correctness audit's one query: what the database says was sold, against what the inventory rows say."""

from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.repositories.pending import fetch_one
from flashsale.repositories.rows import AuditRecord

# One row a sale (the columns of `AuditRecord`): its inventory, the units left in its row plus any moved into its
# shards (see migration 0002), its confirmed orders and units, and the users above its per-user limit. `read` asks
# it of one sale; `flashsale.experiments.analysis.database_audit` of every sale, through SQLAlchemy.
AUDIT_SQL = """
    SELECT s.id AS flash_sale_id,
           s.total_inventory AS total,
           s.remaining_inventory + coalesce(shards.units, 0)::int AS remaining,
           s.per_user_limit,
           coalesce(confirmed.orders, 0)::bigint AS orders,
           coalesce(confirmed.quantity, 0)::bigint AS confirmed_quantity,
           coalesce(confirmed.over_limit, 0)::bigint AS limit_violations
      FROM flash_sales s
      LEFT JOIN LATERAL (SELECT sum(remaining) AS units FROM flash_sale_shards WHERE flash_sale_id = s.id) shards
        ON true
      LEFT JOIN LATERAL (
            SELECT sum(orders) AS orders, sum(quantity) AS quantity,
                   count(*) FILTER (WHERE quantity > s.per_user_limit) AS over_limit
              FROM (SELECT count(*) AS orders, sum(quantity) AS quantity FROM orders
                     WHERE flash_sale_id = s.id AND status = 'CONFIRMED' GROUP BY user_id) AS per_user
           ) confirmed ON true
"""
EVERY_SALE_SQL = AUDIT_SQL + " ORDER BY s.starts_at"


async def read(conn: AsyncConnection, flash_sale_id: UUID) -> AuditRecord | None:
    cur = conn.cursor(row_factory=class_row(AuditRecord))
    await cur.execute(AUDIT_SQL + " WHERE s.id = %(sale)s", {"sale": flash_sale_id})
    return await cur.fetchone()


async def count_missing(conn: AsyncConnection, flash_sale_id: UUID, order_ids: list[UUID]) -> int:
    """How many of `order_ids` are not confirmed orders of this sale."""
    cur = await conn.execute(
        "SELECT count(*) FROM unnest(%s::uuid[]) AS acked (id)"
        " WHERE NOT EXISTS (SELECT 1 FROM orders o"
        " WHERE o.id = acked.id AND o.flash_sale_id = %s AND o.status = 'CONFIRMED')",
        [order_ids, flash_sale_id],
    )
    return (await fetch_one(cur))[0]


async def count_key_mismatches(conn: AsyncConnection, keys: list[str], order_ids: list[UUID]) -> int:
    """How many of these (idempotency key, order the client was answered with) pairs the database contradicts:
    the key has no order, or another one."""
    cur = await conn.execute(
        "SELECT count(*) FROM unnest(%s::text[], %s::uuid[]) AS acked (key, id)"
        " LEFT JOIN orders o ON o.idempotency_key = acked.key"
        " WHERE o.id IS DISTINCT FROM acked.id",
        [keys, order_ids],
    )
    return (await fetch_one(cur))[0]


async def count_keys_with_several_orders(conn: AsyncConnection, flash_sale_id: UUID) -> int:
    """Idempotency keys held by more than one order of this sale (the unique constraint allows none)."""
    cur = await conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM orders WHERE flash_sale_id = %s AND idempotency_key IS NOT NULL"
        " GROUP BY idempotency_key HAVING count(*) > 1) AS several",
        [flash_sale_id],
    )
    return (await fetch_one(cur))[0]


async def count_settlement_states(conn: AsyncConnection, flash_sale_id: UUID) -> tuple[int, int, int]:
    """(orders still PENDING, FAILED orders, orders placed by a settlement and not yet moved onto their pending
    order) of this sale: see `flashsale.services.settlement`."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'PENDING'),"
        " count(*) FILTER (WHERE status = 'FAILED'),"
        " count(*) FILTER (WHERE idempotency_key LIKE 'settle:%%')"
        " FROM orders WHERE flash_sale_id = %s",
        [flash_sale_id],
    )
    return await fetch_one(cur)


async def count_unsettled(conn: AsyncConnection, flash_sale_id: UUID, order_ids: list[UUID]) -> int:
    """How many of these accepted orders are not CONFIRMED or FAILED orders of this sale (lost, or still pending)."""
    cur = await conn.execute(
        "SELECT count(*) FROM unnest(%s::uuid[]) AS accepted (id)"
        " WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = accepted.id AND o.flash_sale_id = %s"
        " AND o.status IN ('CONFIRMED', 'FAILED'))",
        [order_ids, flash_sale_id],
    )
    return (await fetch_one(cur))[0]
