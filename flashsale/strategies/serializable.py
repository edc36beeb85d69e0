"""SERIALIZABLE isolation: no explicit lock; PostgreSQL aborts whichever transaction would break serial order."""

from __future__ import annotations

import dataclasses

from psycopg import AsyncConnection, errors

from flashsale.domain import DomainError, Order, PlaceOrder, SaleNotFound, UserNotFound
from flashsale.repositories import flash_sales, orders
from flashsale.repositories.rows import SaleSnapshotRecord
from flashsale.strategies.base import PGBENCH_VARIANTS, PgbenchPlan
from flashsale.strategies.pipelined import Pipeline, pipelined_transaction
from flashsale.strategies.retry import RetryStrategy


class Serializable(RetryStrategy):
    """Parameters: `retries` (default 16) after the first attempt, `backoff_s` (default 0.001) doubling up to
    `max_backoff_s` (default 0.05), `clock` (the time the sale window is checked against).

    Counters: `serialization_failures` (transactions PostgreSQL aborted), `retries`, `busy` (orders given up).
    """

    name = "serializable"
    conflict = "serialization_failures"
    lost = (errors.SerializationFailure,)
    gave_up = "order on flash sale {sale} failed to serialise in"
    safe = True
    summary = (
        "The seed's flow without FOR UPDATE, in a SERIALIZABLE transaction: read the sale and the user's "
        "confirmed units, check in Python, decrement, insert, commit. PostgreSQL's serializable snapshot "
        "isolation detects that two concurrent orders read and wrote the same row and aborts one with "
        "serialization_failure; the order then retries with jittered backoff, up to a bound, then answers "
        "`busy`. Correctness needs no locking code at all, which is its appeal. Its cost: every order writes "
        "the same row, so concurrent orders almost always conflict and the work of the losers is wasted, "
        "plus the bookkeeping of predicate locks."
    )
    pgbench_note = (
        "BEGIN ISOLATION LEVEL SERIALIZABLE alone, a round trip before the read; pgbench retries without backoff"
    )

    def pgbench_plan(self, vus: int, *, variant: str = PGBENCH_VARIANTS[0]) -> PgbenchPlan:
        """pgbench retries serialization failures itself when told how often."""
        plan = super().pgbench_plan(vus, variant=variant)
        return dataclasses.replace(plan, options=(f"--max-tries={self.retries + 1}",))

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        try:
            return await super().create_order(conn, command)
        except errors.ForeignKeyViolation as exc:
            raise UserNotFound(command.user_id) from exc

    async def attempt(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        """One serializable transaction: the read in one round trip, the writes and COMMIT in the next (the order
        row is read once the pipeline has synced). A refused order commits its read-only transaction rather than
        rolling it back (see `pipelined`: why refused orders commit)."""
        refused: DomainError | None = None
        async with pipelined_transaction(conn, isolation="serializable") as tx:
            seen = await self.read(tx, command)
            try:
                if seen is None:
                    raise SaleNotFound(command.flash_sale_id)
                seen.to_domain().check_order(quantity=command.quantity, already_bought=seen.bought, now=self.clock())
            except DomainError as exc:
                refused = exc
            else:
                await flash_sales.decrement_remaining(tx, command.flash_sale_id, command.quantity)
                inserted = await orders.send_insert_confirmed(tx, command)
        if refused is not None:
            raise refused
        return await inserted.only()

    async def read(self, conn: AsyncConnection | Pipeline, command: PlaceOrder) -> SaleSnapshotRecord | None:
        """The read inside the transaction (a method so that tests can make another order commit right after)."""
        return await flash_sales.read_for_order(conn, command.flash_sale_id, command.user_id)
