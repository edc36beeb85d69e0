"""Statements about the server itself rather than any table."""

from __future__ import annotations

from psycopg import AsyncConnection


async def ping(conn: AsyncConnection) -> None:
    """One round trip: raises `psycopg.OperationalError` if the server is gone."""
    await conn.execute("SELECT 1")
