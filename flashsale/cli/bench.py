"""`flashsale bench pgbench`: the physical reference line, pgbench running the strategy's SQL on the same
scenario, to set against `flashsale load --target db`."""

from __future__ import annotations

import argparse

from flashsale import aio, strategies
from flashsale.audit import audit_sale
from flashsale.cli.db import ready_url
from flashsale.cli.load import add_scenario_arguments, fail, positive_int
from flashsale.cli.output import add_json_flag, emit
from flashsale.db import connection
from flashsale.load.pgbench import PROTOCOLS, PgbenchFailed, run_pgbench
from flashsale.load.sale import prepare_sale
from flashsale.units import seconds


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="reference measurements (pgbench)")
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    pgbench = commands.add_parser(
        "pgbench",
        help="pgbench running the strategy's SQL on a fresh scenario: TPS and average latency",
        description="Runs the pgbench of the embedded PostgreSQL with the strategy's pgbench script, one connection "
        "a client, against a fresh scenario (unless --no-reset), then audits the sale.",
    )
    add_scenario_arguments(pgbench)
    pgbench.add_argument("--vus", type=positive_int, default=8, help="pgbench clients (default 8)")
    pgbench.add_argument("--duration", type=seconds, default=10.0, help="whole seconds (default 10s)")
    pgbench.add_argument(
        "--protocol", choices=PROTOCOLS, default="prepared", help="pgbench query protocol (default prepared)"
    )
    add_json_flag(pgbench)
    pgbench.set_defaults(func=cmd_pgbench)


def cmd_pgbench(args: argparse.Namespace) -> int:
    strategy = strategies.get_strategy(args.strategy)
    url = ready_url()

    async def prepare():
        conn = await connection.connect_async(url)
        async with conn:
            sale = await prepare_sale(
                conn,
                reset=args.reset,
                users=args.users,
                inventory=args.inventory,
                per_user_limit=args.per_user_limit,
                shards=args.shards,
                sale_id=args.sale,
            )
            await strategy.prepare_pgbench(conn, sale.flash_sale_id)
            return sale

    async def audit(sale_id):
        conn = await connection.connect_async(url)
        async with conn:
            return await audit_sale(conn, sale_id)

    sale = aio.run(prepare())
    sale_id, user_count = sale.flash_sale_id, sale.users
    plan = strategy.pgbench_plan(args.vus)  # e.g. batched: one client per worker, a batch per transaction
    try:
        result = run_pgbench(
            url,
            script=plan.script,
            flash_sale_id=sale_id,
            users=user_count,
            clients=plan.clients,
            duration_s=args.duration,
            quantity=args.quantity,
            protocol=args.protocol,
            variables=plan.variables,
            options=plan.options,
        )
    except PgbenchFailed as exc:
        return fail(args, "pgbench_failed", str(exc))
    checked = aio.run(audit(sale_id))
    data = {
        "tps": result.tps,
        "orders_per_transaction": plan.orders_per_transaction,
        "latency_avg_ms": result.latency_avg_ms,
        "clients": result.clients,
        "strategy": strategy.name,
        "duration_s": result.duration_s,
        "transactions": result.transactions,
        "failed": result.failed,
        "protocol": result.protocol,
        "flash_sale_id": str(sale_id),
        "users": user_count,
        "audit": checked.as_json(),
    }
    text = "\n".join(
        [
            f"pgbench {strategy.name}: {result.clients} clients, {result.duration_s} s, {result.protocol} protocol",
            f"  tps ............: {result.tps:.1f}"
            + (f" ({plan.orders_per_transaction} orders each)" if plan.orders_per_transaction != 1 else ""),
            f"  latency avg ....: {result.latency_avg_ms:.3f} ms",
            f"  transactions ...: {result.transactions} ({result.failed} failed)",
            f"  audit ..........: {'ok' if checked.ok else 'FAILED'}: {checked.confirmed_quantity} sold of "
            f"{checked.total}, {checked.remaining} remaining",
            *(f"    !! {problem}" for problem in checked.problems()),
        ]
    )
    emit(args, data, text)
    return 0 if checked.ok else 1
