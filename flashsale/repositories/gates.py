"""What a stock gate is rebuilt from (see `flashsale.stock_gate`): the sale at its next gate epoch, the units each
buyer holds, the idempotency keys that have orders. Sent in one pipelined transaction by `stock_gate.snapshot`."""

from __future__ import annotations

from uuid import UUID

from psycopg.rows import class_row

from flashsale.db.pipeline import Conn
from flashsale.repositories.pending import Pending
from flashsale.repositories.rows import GateSaleRecord


async def send_next_epoch(conn: Conn, sale_id: UUID) -> Pending[GateSaleRecord]:
    """Move the sale to its next gate epoch and return it with what the gate checks. The UPDATE locks the sale row
    until the caller's transaction ends: the statements after it see every order written before, and an order
    admitted at an earlier epoch can no longer be written (`placements.send_take_admitted`)."""
    cur = conn.cursor(row_factory=class_row(GateSaleRecord))
    await cur.execute(
        "UPDATE flash_sales SET gate_epoch = gate_epoch + 1 WHERE id = %s"
        " RETURNING gate_epoch AS epoch, remaining_inventory AS remaining, per_user_limit, starts_at, ends_at",
        [sale_id],
    )
    return Pending(cur, lambda record: record)


async def send_held_by_buyers(conn: Conn, sale_id: UUID) -> Pending[tuple[UUID, int]]:
    """(user, units in confirmed orders of the sale) for every user who holds any."""
    cur = await conn.execute(
        "SELECT user_id, sum(quantity)::bigint FROM orders"
        " WHERE flash_sale_id = %s AND status = 'CONFIRMED' GROUP BY user_id",
        [sale_id],
    )
    return Pending(cur, tuple)


async def send_keys_with_orders(conn: Conn, sale_id: UUID) -> Pending[tuple[str, UUID]]:
    """(idempotency key, its order) for the sale's confirmed orders placed with a key."""
    cur = await conn.execute(
        "SELECT idempotency_key, id FROM orders"
        " WHERE flash_sale_id = %s AND status = 'CONFIRMED' AND idempotency_key IS NOT NULL",
        [sale_id],
    )
    return Pending(cur, tuple)
