"""`flashsale order`: place one order by hand, through the chosen strategy."""

from __future__ import annotations

import argparse
import uuid

from flashsale import aio, strategies
from flashsale.cli.output import add_json_flag, emit
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.domain import PlaceOrder
from flashsale.services import idempotency


def uuid_arg(text: str) -> uuid.UUID:
    return uuid.UUID(text)


uuid_arg.__name__ = "UUID"


def register(subparsers) -> None:
    order = subparsers.add_parser("order", help="place one order")
    order.add_argument("--user", type=uuid_arg, required=True, help="user id (see `flashsale db status`)")
    order.add_argument("--sale", type=uuid_arg, required=True, help="flash sale id (printed by `flashsale db reset`)")
    order.add_argument("--quantity", type=int, default=1, help="units to buy (default 1)")
    order.add_argument(
        "--strategy", default=strategies.DEFAULT_STRATEGY, choices=strategies.names(), help="locking strategy"
    )
    order.add_argument(
        "--idempotency-key", help="place it at most once for this key: again, it answers with the same order"
    )
    add_json_flag(order)
    order.set_defaults(func=cmd_order)


def cmd_order(args: argparse.Namespace) -> int:
    command = PlaceOrder(
        user_id=args.user, flash_sale_id=args.sale, quantity=args.quantity, idempotency_key=args.idempotency_key
    )
    strategy = strategies.get_strategy(args.strategy)
    url = ready_url()

    async def go():
        pool = connection.make_pool(url, size=1)
        async with pool:
            await strategy.start(pool)
            try:
                return await idempotency.place_order(strategy, pool, command)
            finally:
                await strategy.stop()

    placement = aio.run(go())
    placed = placement.order
    emit(
        args,
        {
            "order": {
                "id": placed.id,
                "user_id": placed.user_id,
                "flash_sale_id": placed.flash_sale_id,
                "quantity": placed.quantity,
                "status": placed.status.value,
                "created_at": placed.created_at,
            },
            "strategy": strategy.name,
            "replayed": placement.replayed,
        },
        f"order {placed.id}: {placed.quantity} x sale {placed.flash_sale_id} "
        f"for user {placed.user_id}, {placed.status.value}"
        + (" (placed earlier with this key)" if placement.replayed else ""),
    )
    return 0
