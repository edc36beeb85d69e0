"""PostgreSQL transactions per request: what each request of a run cost the database, counted by the database
itself (`pg_stat_database`: commits and rollbacks), so that a design that answers without PostgreSQL (a refusal by
the stock gate in Redis) or that settles many orders in one transaction (`batched`) shows it as a number.

The count runs from the workload's start to the end of the run, warmup included, and covers every session of the
database: the service's and the load workers' and also the lock sampler's (ten small transactions a second), the
pools' checks of idle connections and the service's own background work (the pending-order sweep), a few a second
beside the orders' own. Divided by every request of the run, warmup included.

PostgreSQL publishes a session's counts when it goes idle, at most once a second, and always when it exits. The
strategies' warm-up publishes its own before the workload starts (`OrderStrategy.warm_up`), and the count is read
once every session the run opened has exited (`settle_s` at most): then it is exact.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import psycopg

from flashsale.db import connection
from flashsale.repositories import database

SETTLE_S = 5.0  # the longest wait for the run's sessions to exit before the count is read anyway
_POLL_S = 0.02


@dataclass
class TransactionCounter:
    """`begin()` before the run opens any connection, `mark()` when its workload starts, `count()` after every part
    of it stopped. Any database error leaves the count unknown (None): a fault may have taken the database away."""

    url: str
    settle_s: float = SETTLE_S
    present: set[int] = field(default_factory=set)  # sessions that were there before the run: not waited for
    before: int | None = None

    async def begin(self) -> None:
        self.present = await self._read(database.other_sessions) or set()

    async def mark(self) -> None:
        self.before = await self._read(database.transactions)

    async def count(self) -> int | None:
        """Transactions since `mark()`, once the run's sessions have exited (or `settle_s` passed). The waiting is
        one transaction of its own, whatever it takes, so that it adds one at most to what it counts."""
        if self.before is None:
            return None
        try:
            conn = await connection.connect_async(self.url)
            async with conn, conn.transaction():
                deadline = time.monotonic() + self.settle_s
                while await database.other_sessions(conn, fresh=True) - self.present:
                    if time.monotonic() >= deadline:
                        break
                    await asyncio.sleep(_POLL_S)
                return await database.transactions(conn, fresh=True) - self.before
        except (psycopg.Error, connection.DatabaseUnavailable):
            return None

    async def _read(self, statement):
        try:
            conn = await connection.connect_async(self.url)
            async with conn:
                return await statement(conn)
        except (psycopg.Error, connection.DatabaseUnavailable):
            return None


def per_request(transactions: int | None, requests: int) -> dict[str, float | int | None]:
    """The summary's `meta.pg_transactions`: the count, the requests it is divided by, and the ratio."""
    ratio = transactions / requests if transactions is not None and requests else None
    return {"total": transactions, "requests": requests, "per_request": ratio}
