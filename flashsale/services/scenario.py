"""A fresh flash-sale scenario: N users, one product, one active sale (the seed's defaults: 100 users,
inventory 50, one per user)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from psycopg import AsyncConnection

from flashsale.domain import InvalidQuantity
from flashsale.domain.model import check_quantity
from flashsale.repositories import flash_sales, products, scenarios
from flashsale.repositories import shards as shards_repo
from flashsale.repositories import users as users_repo

DEFAULT_SHARDS = 8  # inventory shards created beside every sale, for the `sharded` strategy
MAX_SHARDS = 1024


@dataclass(frozen=True)
class Scenario:
    flash_sale_id: UUID
    product_id: UUID
    users: int
    inventory: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    shards: int = DEFAULT_SHARDS

    def as_json(self) -> dict:
        d = asdict(self)
        return {k: str(v) if isinstance(v, UUID | datetime) else v for k, v in d.items()}


class InvalidScenario(ValueError):
    pass


def validate(
    *, users: int, inventory: int, per_user_limit: int, window: timedelta, shards: int = DEFAULT_SHARDS
) -> None:
    if users < 1:
        raise InvalidScenario(f"users must be at least 1, got {users}")
    if inventory < 0:
        raise InvalidScenario(f"inventory must be 0 or more, got {inventory}")
    try:
        check_quantity(per_user_limit)
    except InvalidQuantity:  # a DomainError (a refused order), which here is bad input
        raise InvalidScenario(f"per-user limit must be at least 1, got {per_user_limit}") from None
    if inventory > 2**31 - 1:
        raise InvalidScenario(f"inventory must fit a 32-bit integer, got {inventory}")
    if window <= timedelta(0):
        raise InvalidScenario(f"the sale window must be positive, got {window}")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidScenario(f"shards must be a whole number from 1 to {MAX_SHARDS}, got {shards!r}")


async def reset(
    conn: AsyncConnection,
    *,
    users: int = 100,
    inventory: int = 50,
    per_user_limit: int = 1,
    window: timedelta = timedelta(hours=1),
    starts_in: timedelta = timedelta(0),
    shards: int = DEFAULT_SHARDS,
) -> Scenario:
    """Empty every table and create the scenario, in one transaction (under 2 s for 10,000 users).

    The sale's inventory starts in its row; `shards` empty inventory shards are created beside it, which only
    the `sharded` strategy fills (from the row, on its first order) and uses.
    """
    validate(users=users, inventory=inventory, per_user_limit=per_user_limit, window=window, shards=shards)
    starts_at = datetime.now(UTC) + starts_in
    async with conn.transaction():
        await scenarios.truncate_all(conn)
        await users_repo.insert_many(conn, users)
        product = await products.insert(conn, name="Laptop", price_cents=99_900)
        sale = await flash_sales.insert(
            conn,
            product_id=product.id,
            starts_at=starts_at,
            ends_at=starts_at + window,
            inventory=inventory,
            per_user_limit=per_user_limit,
        )
        await shards_repo.create(conn, sale.id, shards)
    return Scenario(
        flash_sale_id=sale.id,
        product_id=product.id,
        users=users,
        inventory=inventory,
        per_user_limit=per_user_limit,
        starts_at=sale.starts_at,
        ends_at=sale.ends_at,
        shards=shards,
    )
