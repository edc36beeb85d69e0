"""The seed's flow as one PL/pgSQL function: one round trip, and the lock never waits on the client."""

from __future__ import annotations

from psycopg import AsyncConnection, errors

from flashsale.db.pipeline import statements
from flashsale.domain import (
    Order,
    PerUserLimitExceeded,
    PlaceOrder,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.repositories import placements
from flashsale.repositories.rows import PlacementRecord
from flashsale.strategies.base import OrderStrategy


class Procedure(OrderStrategy):
    """Parameters: `clock` (the time the function checks the sale window against). No counters."""

    name = "procedure"
    safe = True
    summary = (
        "The pessimistic flow moved into the database: one call to the PL/pgSQL function place_order(sale, "
        "user, quantity) (migration 0002) locks the sale row FOR UPDATE, checks window, stock and the user's "
        "confirmed units under the lock, decrements, inserts and returns the outcome; the statement commits "
        "on its own. One round trip per order instead of `pessimistic`'s two, and the lock is never held while "
        "the server waits on the client, so the hold time is the server's work plus the commit flush. Same single "
        "hot row as `pessimistic`, so the commit flush now bounds it; and the logic lives in SQL, away from the "
        "domain code and its tests."
    )
    pgbench_matched = True
    pgbench_note = "exact round trip (one call); now() stands for the driver's clock"

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        try:
            async with statements(conn) as one_round_trip:
                placed = await placements.call_place_order(one_round_trip, command, now=self.clock())
        except errors.ForeignKeyViolation as exc:
            raise UserNotFound(command.user_id) from exc
        if placed.outcome != "created":
            raise refusal(placed, command)
        return placed.to_domain(command)


def refusal(placed: PlacementRecord, command: PlaceOrder) -> Exception:
    match placed.outcome:
        case "sale_not_found":
            return SaleNotFound(command.flash_sale_id)
        case "sale_not_active":
            return SaleNotActive(command.flash_sale_id)
        case "sold_out":
            return SoldOut(command.flash_sale_id, remaining=placed.remaining, requested=command.quantity)
        case "per_user_limit_exceeded":
            assert placed.per_user_limit is not None  # the function sets it with this outcome
            return PerUserLimitExceeded(limit=placed.per_user_limit, already=placed.bought, requested=command.quantity)
    raise ValueError(f"place_order returned an unknown outcome {placed.outcome!r}")
