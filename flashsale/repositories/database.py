"""Statements about the server itself rather than any table."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import AsyncConnection

from flashsale.repositories.pending import fetch_one


async def ping(conn: AsyncConnection) -> None:
    """One round trip: raises `psycopg.OperationalError` if the server is gone."""
    await conn.execute("SELECT 1")


async def publish_statistics(conn: AsyncConnection) -> None:
    """Have `conn`'s session publish its statistics now (PostgreSQL 15 or later; older servers: nothing), rather
    than up to a second later, as a busy session does."""
    with contextlib.suppress(psycopg.errors.UndefinedFunction):
        await conn.execute("SELECT pg_stat_force_next_flush()")


# Inside a transaction PostgreSQL answers statistics from a snapshot taken at their first read; `fresh` takes a
# new one, for a caller that reads them again and again in one transaction.
_FRESH = "SELECT pg_stat_clear_snapshot()"


async def transactions(conn: AsyncConnection, *, fresh: bool = False) -> int:
    """Transactions this database has committed and rolled back since its statistics began (pg_stat_database, as
    each session reported them so far: a busy session at most once a second, every session when it exits)."""
    if fresh:
        await conn.execute(_FRESH)
    cur = await conn.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    )
    return int((await fetch_one(cur))[0])


async def other_sessions(conn: AsyncConnection, *, fresh: bool = False) -> set[int]:
    """The process ids of the client sessions on this database but `conn`'s own."""
    if fresh:
        await conn.execute(_FRESH)
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return {int(pid) for (pid,) in await cur.fetchall()}
