"""A transaction whose BEGIN, statements and COMMIT share one pipeline.

psycopg's `conn.transaction()` inside `conn.pipeline()` syncs the pipeline after BEGIN, before COMMIT and after it,
so a transaction costs at least three round trips more than its reads need, and locks taken in it stay held while
the client answers each one. Here BEGIN travels with the first statements and COMMIT with the last writes: a block
that reads nothing is one round trip; each read (a fetch inside the block) adds one. The statements go through
`flashsale.db.pipeline` (psycopg's libpq binding, prepared statements of its own), which costs the client a third of
what psycopg's cursor and pipeline machinery costs for the same round trip.

The block gets a `Pipeline`: repository functions take it in place of the connection. Rows of statements sent in
the block are read after it (see `repositories.pending.Pending`).

Why refused orders commit. Order flows whose refusals are expected (sold out, over the limit, outside the window)
decide them inside the block and raise them after it: their read-only transaction commits, which costs the same
round trip as a rollback and keeps errors for real failures (a lost race, a broken connection). (It used to keep
psycopg's prepared statements too: psycopg forgets them on a rollback; `flashsale.db.pipeline` says what it does
then.) This is the one place the rule is written; the flows refer to it.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from flashsale.db.pipeline import Pipeline, transaction

__all__ = ["Pipeline", "pipelined_transaction"]


def pipelined_transaction(conn: AsyncConnection[Any], *, isolation: str | None = None) -> transaction:
    """BEGIN (at `isolation`, "serializable" or the default), the block, COMMIT: `async with
    pipelined_transaction(conn) as tx`, and the block sends its statements on `tx`. If the block raises or a
    statement fails, roll back and raise the first error.

    The connection must be in autocommit mode (as pool connections are) and idle. Refusals are raised after the
    block, so that it commits (see "Why refused orders commit" above).
    """
    return transaction(conn, isolation=isolation)
