"""The sale a run loads: a fresh scenario, or one already in the database (`--no-reset`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from psycopg import AsyncConnection

from flashsale.domain import SaleNotFound
from flashsale.repositories import flash_sales
from flashsale.repositories import users as users_repo
from flashsale.services import scenario

if TYPE_CHECKING:
    from flashsale.load.config import LoadConfig


@dataclass(frozen=True)
class Sale:
    flash_sale_id: UUID
    users: int
    inventory: int  # total units
    per_user_limit: int


async def configured_sale(conn: AsyncConnection, config: LoadConfig) -> Sale:
    """The sale a load configuration describes: with `reset`, an empty database and a fresh scenario (with `shards`
    when the scenario takes them); otherwise the sale `sale_id`, or the newest one, as it is."""
    if config.reset:
        shards = scenario.DEFAULT_SHARDS if config.shards is None else config.shards
        made = await scenario.reset(
            conn, users=config.users, inventory=config.inventory, per_user_limit=config.per_user_limit, shards=shards
        )
        return Sale(made.flash_sale_id, made.users, made.inventory, made.per_user_limit)
    if config.sale_id is not None:
        found = await flash_sales.get(conn, config.sale_id)
        if found is None:
            raise SaleNotFound(config.sale_id)
    else:
        every = await flash_sales.list_all(conn)
        if not every:
            raise LookupError("there is no flash sale to load (leave out --no-reset, or run `flashsale db reset`)")
        found = every[-1]
    return Sale(found.id, await users_repo.count(conn), found.total_inventory, found.per_user_limit)
