"""`flashsale demo`: a crowd of concurrent buyers on a fresh sale, then the audit. A one-minute tour of the
order flow, and the stand-in job of `make report` until the notebooks take over."""

from __future__ import annotations

import argparse

from flashsale import aio, stock_gate, strategies
from flashsale.cli.output import add_json_flag, emit
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.repositories import users
from flashsale.services import scenario
from flashsale.services.audit import audit_sale
from flashsale.services.crowd import buy_concurrently, crowd_commands


def register(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="concurrent buyers on a fresh sale, then the oversell audit")
    demo.add_argument("--buyers", type=int, default=500, help="concurrent orders (default 500)")
    demo.add_argument("--users", type=int, default=100, help="users in the scenario (default 100)")
    demo.add_argument("--inventory", type=int, default=50, help="units for sale (default 50)")
    demo.add_argument("--per-user-limit", type=int, default=1, help="units per user (default 1)")
    demo.add_argument("--pool-size", type=int, default=16, help="database connections (default 16)")
    demo.add_argument(
        "--strategy", default=strategies.DEFAULT_STRATEGY, choices=strategies.names(), help="locking strategy"
    )
    add_json_flag(demo)
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.buyers < 1 or args.pool_size < 1:
        raise ValueError("--buyers and --pool-size must be at least 1")
    strategy = strategies.get_strategy(args.strategy)
    url = ready_url()

    async def go():
        conn = await connection.connect_async(url)
        async with conn:
            made = await scenario.reset(
                conn, users=args.users, inventory=args.inventory, per_user_limit=args.per_user_limit
            )
            user_ids = await users.list_ids(conn, limit=args.users)
        pool = connection.make_pool(url, size=args.pool_size)
        async with pool:
            await strategy.start(pool)
            try:
                result = await buy_concurrently(
                    pool, strategy, crowd_commands(user_ids, made.flash_sale_id, buyers=args.buyers)
                )
            finally:
                await strategy.stop()
        gate = await stock_gate.read_view(made.flash_sale_id) if strategy.needs_redis else None
        conn = await connection.connect_async(url)
        async with conn:
            audit = await audit_sale(conn, made.flash_sale_id, gate=gate)
        return made, result, audit

    made, result, audit = aio.run(go())
    rate = len(result.orders) / result.elapsed_s if result.elapsed_s else 0.0
    lines = [
        f"strategy {strategy.name}: {args.buyers} concurrent buyers, {made.users} users, "
        f"inventory {made.inventory}, limit {made.per_user_limit} per user, pool {args.pool_size}",
        f"  finished in {result.elapsed_s * 1000:.0f} ms, {len(result.orders)} orders created ({rate:.0f} orders/s)",
        *(f"  {outcome:<26} {count:>6}" for outcome, count in sorted(result.outcomes.items())),
        f"audit: {'ok' if audit.ok else 'FAILED'}: {audit.confirmed_quantity} sold of {audit.total}, "
        f"{audit.remaining} remaining, {audit.limit_violations} limit violations",
        *(f"  !! {problem}" for problem in audit.problems()),
    ]
    emit(
        args,
        {
            "strategy": strategy.name,
            "buyers": args.buyers,
            "elapsed_s": result.elapsed_s,
            "outcomes": dict(result.outcomes),
            "audit": audit.as_json(),
        },
        "\n".join(lines),
    )
    return 0 if audit.ok else 1
