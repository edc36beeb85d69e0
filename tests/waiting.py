"""Waiting for an event instead of sleeping for a while: tests synchronise on what they can observe (a session
waiting on a lock, a counter, a queue), and the timeouts here only stop a test that would otherwise hang.

On a loaded machine an event takes longer to come, never fails to: so the timeouts are generous and no test
asserts on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg

HANG_S = 60.0  # a test that waits longer than this for an event has hung

# Sessions of this database waiting on a heavyweight lock (a row, a transaction, an advisory lock), other than
# the asking one.
LOCK_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() "
    "AND pid <> pg_backend_pid()"
)


async def until(predicate: Callable[[], object], what: str) -> None:
    """Return once `predicate()` is true; yields to the event loop between checks."""
    deadline = time.monotonic() + HANG_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_S:.0f} s for {what}")
        await asyncio.sleep(0.005)


async def until_async(probe: Callable[[], Awaitable[object]], what: str) -> None:
    """Return once `await probe()` is true (a query, say); yields to the event loop between checks."""
    deadline = time.monotonic() + HANG_S
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_S:.0f} s for {what}")
        await asyncio.sleep(0.005)


async def lock_waiters(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute(LOCK_WAITERS)
    return (await cur.fetchone())[0]


async def until_lock_waiters(conn: psycopg.AsyncConnection, count: int) -> int:
    """Poll `pg_stat_activity` until at least `count` sessions wait on a lock; returns how many were seen."""
    deadline = time.monotonic() + HANG_S
    while (seen := await lock_waiters(conn)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_S:.0f} s for {count} sessions to queue on a lock; {seen} did")
        await asyncio.sleep(0.005)
    return seen


async def until_no_lock_waiters(conn: psycopg.AsyncConnection) -> None:
    """Poll `pg_stat_activity` until no session waits on a lock."""
    deadline = time.monotonic() + HANG_S
    while (seen := await lock_waiters(conn)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_S:.0f} s for no session to queue on a lock; {seen} still do")
        await asyncio.sleep(0.005)


async def until_backend_gone(conn: psycopg.AsyncConnection, pid: int) -> None:
    """Poll `pg_stat_activity` until the backend `pid` has ended."""
    deadline = time.monotonic() + HANG_S
    query = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
    while (await (await conn.execute(query, [pid])).fetchone())[0]:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {HANG_S:.0f} s for backend {pid} to end")
        await asyncio.sleep(0.005)


def wait_for(predicate: Callable[[], object], what: str, *, timeout: float = HANG_S, interval: float = 0.02) -> None:
    """The blocking `until`, for plain test functions."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(interval)


def blocked_on_lock(database_url: str) -> int:
    """How many sessions wait on a lock now (a blocking `lock_waiters` on a connection of its own)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(LOCK_WAITERS).fetchone()[0]
