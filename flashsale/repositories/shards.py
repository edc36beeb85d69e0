"""A sale's inventory spread over K rows (the `sharded` strategy)."""

from __future__ import annotations

from uuid import UUID

from psycopg.rows import class_row

from flashsale.db.pipeline import Conn
from flashsale.repositories.pending import fetch_one
from flashsale.repositories.rows import ShardRecord


async def create(conn: Conn, flash_sale_id: UUID, shards: int) -> int:
    """K empty shards numbered 0..K-1; returns how many were created."""
    cur = await conn.execute(
        "INSERT INTO flash_sale_shards (flash_sale_id, shard) SELECT %s, n FROM generate_series(0, %s - 1) AS n",
        [flash_sale_id, shards],
    )
    return cur.rowcount


async def list_for_sale(conn: Conn, flash_sale_id: UUID) -> list[ShardRecord]:
    cur = conn.cursor(row_factory=class_row(ShardRecord))
    await cur.execute(
        "SELECT flash_sale_id, shard, remaining FROM flash_sale_shards WHERE flash_sale_id = %s ORDER BY shard",
        [flash_sale_id],
    )
    return await cur.fetchall()


async def lock_all(conn: Conn, flash_sale_id: UUID) -> list[ShardRecord]:
    """Every shard of the sale, locked in shard order (one order for every caller, so they cannot deadlock)."""
    cur = conn.cursor(row_factory=class_row(ShardRecord))
    await cur.execute(
        "SELECT flash_sale_id, shard, remaining FROM flash_sale_shards WHERE flash_sale_id = %s"
        " ORDER BY shard FOR UPDATE",
        [flash_sale_id],
    )
    return await cur.fetchall()


async def total_remaining(conn: Conn, flash_sale_id: UUID) -> int:
    cur = await conn.execute(
        "SELECT coalesce(sum(remaining), 0)::int FROM flash_sale_shards WHERE flash_sale_id = %s", [flash_sale_id]
    )
    return (await fetch_one(cur))[0]


async def set_remaining(conn: Conn, flash_sale_id: UUID, remaining: dict[int, int]) -> None:
    """Overwrite the remaining units of the given shards ({shard: units}); the caller holds their locks."""
    await conn.execute(
        "UPDATE flash_sale_shards s SET remaining = v.remaining"
        " FROM unnest(%s::int[], %s::int[]) AS v (shard, remaining)"
        " WHERE s.flash_sale_id = %s AND s.shard = v.shard",
        [list(remaining), list(remaining.values()), flash_sale_id],
    )
