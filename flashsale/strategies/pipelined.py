"""A transaction whose BEGIN, statements and COMMIT share one pipeline.

psycopg's `conn.transaction()` inside `conn.pipeline()` syncs the pipeline after BEGIN, before COMMIT and after it,
so a transaction costs at least three round trips more than its reads need, and locks taken in it stay held while
the client answers each one. Here BEGIN travels with the first statements and COMMIT with the last writes: a block
that reads nothing is one round trip; each read (a fetch inside the block) adds one.

Rows of statements sent in the block are read after it (see `repositories.pending.Pending`).

Why refused orders commit. psycopg prepares a statement on a connection once it has run a few times there, and
forgets every prepared statement of the connection when a transaction rolls back. Order flows whose refusals are
expected (sold out, over the limit, outside the window) therefore decide them inside the block and raise them after
it: their read-only transaction commits, and the connection keeps its statements prepared for the next order. Only
real failures (a lost race, a broken connection) roll back. This is the one place the rule is written; the flows
refer to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection

_BEGIN = {None: "BEGIN", "serializable": "BEGIN ISOLATION LEVEL SERIALIZABLE"}


@asynccontextmanager
async def pipelined_transaction(conn: AsyncConnection, *, isolation: str | None = None) -> AsyncIterator[None]:
    """BEGIN (at `isolation`, "serializable" or the default), the block, COMMIT. If the block raises or a statement
    fails, roll back after the pipeline has synced and raise the first error.

    The connection must be in autocommit mode (as pool connections are) and not already in a pipeline. Refusals
    are raised after the block, so that it commits (see "Why refused orders commit" above).
    """
    error: Exception | None = None
    try:
        async with conn.pipeline():
            await conn.execute(_BEGIN[isolation])
            try:
                yield
                await conn.execute("COMMIT")
            except Exception as exc:  # leave the pipeline cleanly first (no logged warning), roll back below
                error = exc
    except psycopg.Error as exc:  # a statement failed and the sync reported it (or what it aborted)
        error = error or exc
    if error is not None:
        # psycopg's rollback() also forgets the connection's prepared statements (and deallocates them): a statement
        # it meant to prepare in the aborted part of the pipeline was never prepared, though its cache says it was.
        await conn.rollback()
        raise error
