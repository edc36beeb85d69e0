"""In-process driver efficiency: `flashsale load --target db` against `flashsale bench pgbench`, for the same
strategy, clients and scenario, back to back. The bar: the db target reaches at least 0.9x pgbench's TPS.

The scenario does not sell out and allows many units per user, so that every transaction is a full order
(lock, check, decrement, insert) in both. pgbench runs first on a fresh scenario, then the load runner on
another fresh one, closed model without think time, one connection a VU.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from flashsale import config, strategies
from flashsale.db import connection, migrate
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.reference import run_reference
from flashsale.units import seconds

BAR = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pgbench_kind = strategies.names(reference="pgbench")  # redis_gate's line is redis-benchmark's
    parser.add_argument("--strategies", nargs="+", default=pgbench_kind, choices=pgbench_kind)
    parser.add_argument("--clients", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--duration", type=seconds, default=10.0, help="each measurement (default 10s)")
    parser.add_argument("--warmup", type=seconds, default=1.0, help="load runner warmup (default 1s)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--inventory", type=int, default=100_000_000)
    parser.add_argument("--per-user-limit", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "db_vs_pgbench.json"))
    args = parser.parse_args()

    url = connection.database_url()
    with connection.connect(url) as conn:
        migrate.migrate(conn)
    sale = {"users": args.users, "inventory": args.inventory, "per_user_limit": args.per_user_limit}
    rows = []
    print(
        f"{'strategy':<20} {'clients':>7} {'pgbench o/s':>12} {'db o/s':>9} {'ratio':>6} "
        f"{'pgbench ms':>10} {'db avg ms':>9} {'db p95 ms':>9} {'cpu %':>6}  audit"
    )
    for name in args.strategies:
        for clients in args.clients:
            load_config = LoadConfig(
                target="db",
                strategy=name,
                shape=Closed(vus=clients, think_ms=0),
                duration_s=args.duration,
                warmup_s=args.warmup,
                database_url=url,
                **sale,
            )
            reference = run_reference(load_config)  # pgbench first, on its own fresh scenario
            bench, plan = reference.pgbench, reference.plan
            load = run_load(load_config).summary
            bench_rate = reference.orders_per_s  # orders/s, as the load runner counts them
            ratio = load["orders_per_s"] / bench_rate if bench_rate else float("nan")
            row = {
                "strategy": name,
                "clients": clients,
                "pgbench_tps": bench.tps,
                "pgbench_orders_per_transaction": plan.orders_per_transaction,
                "pgbench_latency_avg_ms": bench.latency_avg_ms,
                "pgbench_orders_per_s": bench_rate,
                "db_tps": load["rps"],
                "db_orders_per_s": load["orders_per_s"],
                "db_latency_ms": load["latency_ms"],
                "ratio": ratio,
                "meets_bar": ratio >= BAR,
                "client_cpu_percent": load["client_cpu_percent"],
                "audit_ok": load["audit"]["ok"],
                "lock_waiters_mean": load["lock_waiters_mean"],
            }
            rows.append(row)
            lat = load["latency_ms"]
            print(
                f"{name:<20} {clients:>7} {bench_rate:>12.1f} {load['orders_per_s']:>9.1f} {ratio:>6.2f} "
                f"{bench.latency_avg_ms:>10.2f} {lat['avg']:>9.2f} {lat['p95']:>9.2f} "
                f"{load['client_cpu_percent']:>6.0f}  {'ok' if row['audit_ok'] else 'FAILED'}",
                flush=True,
            )
    _save(args.out, {"bar": BAR, "duration_s": args.duration, "scenario": sale, "rows": rows})


def _save(path: str, data: dict) -> None:
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
