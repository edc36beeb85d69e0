"""A statement sent in pipeline mode whose row is read later.

Pipelined flows queue their statements and COMMIT before reading anything, so that the whole transaction travels
in one round trip and no lock is held while the server waits for the client; they read the results afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Rows(Protocol[R]):
    """What a statement's rows are read from: psycopg's `AsyncCursor`, or a `flashsale.db.pipeline.Cursor`."""

    async def fetchone(self) -> R | None: ...

    async def fetchall(self) -> list[R]: ...


class NoRow(LookupError):
    """A statement that always returns a row (an aggregate, an INSERT ... RETURNING) returned none."""


async def fetch_one(cursor: Rows[R]) -> R:
    """The row of a statement that always returns one."""
    row = await cursor.fetchone()
    if row is None:
        raise NoRow("the statement returned no row")
    return row


class Pending(Generic[T]):
    def __init__(self, cursor: Rows[Any], convert: Callable[[Any], T]) -> None:
        self._cursor = cursor
        self._convert = convert

    async def one(self) -> T | None:
        """The statement's row, converted; None if it returned no row."""
        record = await self._cursor.fetchone()
        return None if record is None else self._convert(record)

    async def only(self) -> T:
        """The row of a statement that always returns one (an INSERT ... RETURNING that did not fail), converted."""
        return self._convert(await fetch_one(self._cursor))

    async def all(self) -> list[T]:
        return [self._convert(record) for record in await self._cursor.fetchall()]
