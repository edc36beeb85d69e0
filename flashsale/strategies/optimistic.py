"""Optimistic locking: read without a lock, write only if nobody wrote in between."""

from __future__ import annotations

from psycopg import AsyncConnection, errors

from flashsale.db.pipeline import statements
from flashsale.domain import Order, PlaceOrder, SaleNotFound, UserNotFound
from flashsale.repositories import flash_sales, placements
from flashsale.repositories.rows import SaleSnapshotRecord
from flashsale.strategies.retry import RetryStrategy


class Optimistic(RetryStrategy):
    """Parameters: `retries` (default 16) after the first attempt, `backoff_s` (default 0.001) doubling up to
    `max_backoff_s` (default 0.05), `clock` (the time the sale window is checked against).

    Counters: `version_conflicts` (writes that found the version changed), `retries`, `busy` (orders given up).
    """

    name = "optimistic"
    conflict = "version_conflicts"
    gave_up = "flash sale {sale} changed under every one of"
    safe = True
    summary = (
        "Optimistic locking with a version column. The order reads the sale, its version and the user's "
        "confirmed units in one unlocked statement, checks window, stock and limit in Python, then sends one "
        "statement that decrements the row and inserts the order only WHERE version = the one it read (a trigger "
        "moves the version on with every change of the row, whichever strategy makes it). Zero rows means another "
        "order committed in between: it retries with jittered backoff, up to a bound, then answers `busy`. No lock "
        "is held between read and write (two round trips, each autocommit); the price is wasted work, since under "
        "contention every winner makes all the other in-flight readers retry, and since every order moves the one "
        "version, the writes still serialise on one row."
    )
    pgbench_note = "one attempt's round trips; a version conflict sells nothing instead of backing off and retrying"

    async def attempt(self, conn: AsyncConnection, command: PlaceOrder) -> Order | None:
        """Read, check, and write only if the version is still the one read; None if it moved on."""
        seen = await self.read(conn, command)
        if seen is None:
            raise SaleNotFound(command.flash_sale_id)
        seen.to_domain().check_order(quantity=command.quantity, already_bought=seen.bought, now=self.clock())
        try:
            async with statements(conn) as one_round_trip:
                return await placements.take_if_unchanged(one_round_trip, command, seen.version)
        except errors.ForeignKeyViolation as exc:
            raise UserNotFound(command.user_id) from exc

    async def read(self, conn: AsyncConnection, command: PlaceOrder) -> SaleSnapshotRecord | None:
        """The unlocked read (a method so that tests can make another order commit right after it)."""
        async with statements(conn) as one_round_trip:
            return await flash_sales.read_for_order(one_round_trip, command.flash_sale_id, command.user_id)
