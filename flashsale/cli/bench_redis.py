"""`flashsale bench redis`: the reference line of a strategy that decides in Redis (`redis_gate`), as `bench pgbench`
is for those that decide in SQL: redis-benchmark sending the strategy's own Lua script with the same clients."""

from __future__ import annotations

import argparse
import dataclasses

from flashsale import strategies
from flashsale.cli.load import add_scenario_arguments, fail
from flashsale.cli.output import add_json_flag, emit
from flashsale.cli.placement_options import add_placement_options, placement_from
from flashsale.load.config import LoadConfig
from flashsale.load.redis_benchmark import RedisBenchmarkFailed
from flashsale.load.reference import run_reference
from flashsale.load.shapes import Closed
from flashsale.units import positive_int

IN_REDIS = strategies.names(reference="redis-benchmark")


def register(commands) -> None:
    redis = commands.add_parser(
        "redis",
        help="redis-benchmark sending a Redis strategy's Lua script on a fresh scenario: decisions/s, latency",
        description="Builds the strategy's gate from a fresh scenario (unless --no-reset), runs Debian's "
        "redis-benchmark (redis-tools) sending its Lua script (EVALSHA) with one connection a client and users "
        "drawn among the sale's, then rebuilds the gate from the database (the orders it admitted are never "
        "written) and audits the sale, the gate compared. Where redis-benchmark is not installed, it says so.",
    )
    add_scenario_arguments(redis)
    redis.set_defaults(strategy=IN_REDIS[0])
    redis.add_argument("--vus", type=positive_int, default=8, help="redis-benchmark clients (default 8)")
    redis.add_argument("--requests", type=positive_int, help="script calls in all (default: the strategy's plan)")
    add_placement_options(redis, "client")
    add_json_flag(redis)
    redis.set_defaults(func=cmd_redis)


def cmd_redis(args: argparse.Namespace) -> int:
    if args.strategy not in IN_REDIS:
        raise ValueError(f"{args.strategy}'s reference line is pgbench (`flashsale bench pgbench`)")
    config = LoadConfig(
        target="db",
        strategy=args.strategy,
        shape=Closed(vus=args.vus),
        users=args.users,
        inventory=args.inventory,
        per_user_limit=args.per_user_limit,
        quantity=args.quantity,
        reset=args.reset,
        sale_id=args.sale,
        client_cpus=placement_from(args).client,
    )
    try:
        reference = run_reference(config, requests=args.requests)
    except RedisBenchmarkFailed as exc:
        return fail(args, "redis_benchmark_failed", str(exc))
    result, checked, sale = reference.redis_benchmark, reference.audit, reference.sale
    data = {
        "strategy": args.strategy,
        "missing": reference.missing,
        **(dataclasses.asdict(result) if result is not None else {}),
        "admitted": reference.admitted,
        "orders_per_s": reference.orders_per_s,
        "note": reference.plan.note,
        "flash_sale_id": str(sale.flash_sale_id),
        "users": sale.users,
        "audit": checked.as_json(),
    }
    audit_line = (
        f"  audit ..........: {'ok' if checked.ok else 'FAILED'}: {checked.confirmed_quantity} sold of "
        f"{checked.total}, {checked.remaining} remaining, stock gate {checked.gate_stock}"
    )
    if result is None:
        lines = [f"redis-benchmark {args.strategy}: no figure: {reference.missing}", audit_line]
    else:
        lines = [
            f"redis-benchmark {args.strategy}: {result.clients} clients, {result.requests} script calls"
            + (f", on CPUs {result.cpus}" if result.cpus else ""),
            f"  script .........: the strategy's decide script ({reference.plan.note})",
            f"  decisions/s ....: {result.rps:.1f} ({reference.admitted} admitted)",
            f"  latency ........: avg {result.latency_avg_ms:.3f} ms, p50 {result.latency_p50_ms:.3f}, "
            f"p95 {result.latency_p95_ms:.3f}, p99 {result.latency_p99_ms:.3f}",
            audit_line,
        ]
    emit(args, data, "\n".join([*lines, *(f"    !! {problem}" for problem in checked.problems())]))
    return 0 if checked.ok else 1
