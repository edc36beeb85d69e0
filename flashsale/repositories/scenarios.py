"""Statements that act on the whole scenario rather than one table."""

from __future__ import annotations

from psycopg import AsyncConnection


async def truncate_all(conn: AsyncConnection) -> None:
    """Empty every scenario table (and, through CASCADE, any table that references them)."""
    await conn.execute("TRUNCATE orders, flash_sales, products, users RESTART IDENTITY CASCADE")
