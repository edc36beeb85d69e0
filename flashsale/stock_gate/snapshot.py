"""What a sale's gate is rebuilt from: the database at the sale's next gate epoch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import AsyncConnection

from flashsale.db.pipeline import transaction
from flashsale.repositories import gates


@dataclass(frozen=True)
class GateSnapshot:
    epoch: int
    stock: int  # the sale row's remaining units
    per_user_limit: int
    opens_at: datetime
    closes_at: datetime
    buyers: dict[UUID, int]  # units each user holds in confirmed orders
    keys: dict[str, UUID]  # idempotency key -> its confirmed order


async def take_snapshot(conn: AsyncConnection, flash_sale_id: UUID) -> GateSnapshot | None:
    """Move the sale to its next gate epoch and read what its gate must hold, in one transaction (one round trip)
    that holds the sale row's lock from its first statement: every order written before is in the snapshot, and
    every order admitted at an earlier epoch and not yet written is refused when it tries (the fence). None if the
    sale does not exist."""
    async with transaction(conn) as tx:  # as `strategies.pipelined_transaction`: one round trip
        sale = await gates.send_next_epoch(tx, flash_sale_id)
        held = await gates.send_held_by_buyers(tx, flash_sale_id)
        keyed = await gates.send_keys_with_orders(tx, flash_sale_id)
    record = await sale.one()
    if record is None:
        return None
    return GateSnapshot(
        epoch=record.epoch,
        stock=record.remaining,
        per_user_limit=record.per_user_limit,
        opens_at=record.starts_at,
        closes_at=record.ends_at,
        buyers=dict(await held.all()),
        keys=dict(await keyed.all()),
    )
