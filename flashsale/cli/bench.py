"""`flashsale bench pgbench`: the physical reference line, pgbench running the strategy's SQL on the same
scenario, to set against `flashsale load --target db`; `flashsale bench redis` (`bench_redis.py`) is the line of
the strategies that decide in Redis."""

from __future__ import annotations

import argparse

from flashsale import strategies
from flashsale.cli import bench_redis
from flashsale.cli.load import add_scenario_arguments, fail, scenario_from
from flashsale.cli.output import add_json_flag, emit
from flashsale.cli.placement_options import add_placement_options, placement_from
from flashsale.load.config import LoadConfig
from flashsale.load.pgbench import PROTOCOLS, PgbenchFailed
from flashsale.load.reference import run_reference
from flashsale.load.shapes import Closed
from flashsale.strategies import PGBENCH_VARIANTS, PgbenchPlan
from flashsale.units import positive_int, seconds


def register(subparsers) -> None:
    bench = subparsers.add_parser("bench", help="reference measurements (pgbench, redis-benchmark)")
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
    pgbench.add_argument(
        "--variant",
        choices=PGBENCH_VARIANTS,
        default=PGBENCH_VARIANTS[0],
        help=f"which script: {PGBENCH_VARIANTS[0]} sends the strategy's statements in its round trips as far as "
        "pgbench allows (users looked up before the transaction), lookup the first scripts, one statement a round "
        f"trip with the user looked up in each order (default {PGBENCH_VARIANTS[0]})",
    )
    add_placement_options(pgbench, "db", "client")
    add_json_flag(pgbench)
    pgbench.set_defaults(func=cmd_pgbench)
    bench_redis.register(commands)


def cmd_pgbench(args: argparse.Namespace) -> int:
    strategy = strategies.get_strategy(args.strategy)
    if strategy.reference_kind != "pgbench":
        raise ValueError(f"{strategy.name}'s reference line is {strategy.reference_kind} (`flashsale bench redis`)")
    placement = placement_from(args)
    config = LoadConfig(
        target="db",
        **scenario_from(args),
        shape=Closed(vus=args.vus),
        duration_s=args.duration,
        db_cpus=placement.db,
        client_cpus=placement.client,
    )
    try:
        reference = run_reference(config, protocol=args.protocol, variant=args.variant)
    except PgbenchFailed as exc:
        return fail(args, "pgbench_failed", str(exc))
    result, plan, checked, sale = reference.pgbench, reference.plan, reference.audit, reference.sale
    assert result is not None, "a pgbench reference has pgbench's figures"
    assert isinstance(plan, PgbenchPlan)
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
        "db_cpus": config.db_cpus,
        "client_cpus": result.cpus,
        "variant": plan.variant,
        "matched": plan.matched,
        "note": plan.note,
        "orders_per_s": reference.orders_per_s,
        "flash_sale_id": str(sale.flash_sale_id),
        "users": sale.users,
        "audit": checked.as_json(),
    }
    text = "\n".join(
        [
            f"pgbench {strategy.name}: {result.clients} clients, {result.duration_s} s, {result.protocol} protocol"
            + (f", database on CPUs {config.db_cpus}" if config.db_cpus else "")
            + (f", pgbench on CPUs {result.cpus}" if result.cpus else ""),
            f"  script .........: {plan.variant} ("
            + ("matches the driver's round trips; " if plan.matched else "differs from the driver: ")
            + f"{plan.note})",
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
