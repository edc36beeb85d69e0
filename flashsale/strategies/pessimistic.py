"""The seed's naive flow: lock the sale's single inventory row for the whole order transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

from psycopg import AsyncConnection, errors

from flashsale.domain import FlashSale, Order, OrderStatus, PlaceOrder, SaleNotFound, UserNotFound
from flashsale.repositories import flash_sales, orders
from flashsale.strategies.base import OrderStrategy


def utc_now() -> datetime:
    return datetime.now(UTC)


async def create_order(
    conn: AsyncConnection,
    command: PlaceOrder,
    *,
    clock: Callable[[], datetime] = utc_now,
    lock: Callable[[AsyncConnection, UUID], Awaitable[FlashSale | None]] = flash_sales.get_for_update,
) -> Order:
    """Begin; SELECT ... FOR UPDATE the sale; check window, stock and the user's limit; decrement; insert the
    order as CONFIRMED; commit. Any failure rolls the whole transaction back.

    Statements are pipelined (BEGIN travels with the locking SELECT, the UPDATE with the INSERT), which saves
    round trips without changing what is locked or for how long relative to the work done.
    `lock` is the locking read (`pessimistic_nowait` passes the NOWAIT one).
    """
    try:
        async with conn.pipeline(), conn.transaction():
            sale = await lock(conn, command.flash_sale_id)
            if sale is None:
                raise SaleNotFound(command.flash_sale_id)
            bought = await orders.confirmed_quantity(conn, user_id=command.user_id, flash_sale_id=command.flash_sale_id)
            sale.check_order(quantity=command.quantity, already_bought=bought, now=clock())
            await flash_sales.decrement_remaining(conn, sale.id, command.quantity)
            return await orders.insert(
                conn,
                user_id=command.user_id,
                flash_sale_id=sale.id,
                quantity=command.quantity,
                status=OrderStatus.CONFIRMED,
                idempotency_key=command.idempotency_key,
            )
    except errors.ForeignKeyViolation as exc:
        raise UserNotFound(command.user_id) from exc


class Pessimistic(OrderStrategy):
    name = "pessimistic"
    safe = True
    summary = (
        "The seed's naive design. Each order opens a transaction, locks the flash sale's single inventory row "
        "with SELECT ... FOR UPDATE, checks the sale window, the remaining stock and the user's confirmed "
        "quantity against the per-user limit, decrements the row, inserts the order as CONFIRMED and commits. "
        "Correct by construction, but every order for a sale queues on that one row lock, so throughput is "
        "capped at 1 / (time the lock is held), round trips to the client included."
    )

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        return await create_order(conn, command)
