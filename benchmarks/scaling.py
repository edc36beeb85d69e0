"""Does the lab measure the database, or its own client? The load runner at 1 and at N worker processes against
pgbench replaying the same SQL (the strategy's `pgbench_plan`, `-j` one thread per core), back to back, and the
HTTP service at 1 and at N processes.

For each strategy and virtual-user level: pgbench first (on its own fresh scenario), then the runner with one
worker, then with `--workers` workers, each on a fresh scenario that never sells out (every transaction a full
order). The bar (issue 10): every safe strategy at least 0.9x pgbench at 8 and 64 VUs. The lock-hold column is
the client-side time the pessimistic flow holds the row (locked row received -> commit answered), per order; the
µs/o columns the client CPU per order of pgbench, of the runner with 1 worker and with N (on a machine whose cores
the database needs too, the client's CPU is taken from the database).
Then the HTTP service (`--http-strategy` at `--http-vus`) with the runner at N workers and the service at 1 and
at N processes, beside the same load in-process.

    .venv/bin/flashsale db up
    .venv/bin/python benchmarks/scaling.py                       # 5 s each: about 6 minutes on 2 cores
    .venv/bin/python benchmarks/scaling.py --strategies pessimistic --vus 8,64 --duration 3s
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config, strategies
from flashsale.db import connection
from flashsale.http.settings import ServiceSettings
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.config import available_cores
from flashsale.load.reference import run_reference
from flashsale.load.summary import cpu_us_per_order
from flashsale.units import seconds

BAR = 0.9
BAR_VUS = (8, 64)
NEVER = 100_000_000


def load_row(config: LoadConfig) -> dict:
    result = run_load(config)
    s = result.summary
    return {
        "cpu_us_per_order": cpu_us_per_order(s["client_cpu_percent"], s["orders_per_s"]),
        "orders_per_s": s["orders_per_s"],
        "p50_ms": s["latency_ms"]["p50"],
        "p95_ms": s["latency_ms"]["p95"],
        "client_cpu_percent": s["client_cpu_percent"],
        "client_cpu_percent_by_worker": s["client_cpu_percent_by_worker"],
        "service_cpu_percent": s["meta"].get("service_cpu_percent"),
        "lock_hold_ms": s["meta"].get("lock_hold_ms"),
        "workers": s["workers"],
        "audit_ok": result.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="pessimistic,atomic,sharded,batched")
    parser.add_argument("--vus", default="8,64,128")
    parser.add_argument("--workers", type=int, default=max(2, available_cores()), help="N (default: the cores)")
    parser.add_argument("--duration", type=seconds, default=5.0)
    parser.add_argument("--warmup", type=seconds, default=1.0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--http-strategy", default="batched")
    parser.add_argument("--http-vus", type=int, default=64)
    parser.add_argument("--no-http", dest="http", action="store_false")
    parser.add_argument("--lock-hold", action="store_true", help="the lock-hold section even without pessimistic")
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "scaling.json"))
    args = parser.parse_args()
    names = [n for n in args.strategies.split(",") if n]
    for name in names:
        strategies.STRATEGIES[name]
    levels = [int(v) for v in args.vus.split(",")]
    url = connection.database_url()
    common = dict(
        target="db", duration_s=args.duration, warmup_s=args.warmup, users=args.users,
        inventory=NEVER, per_user_limit=NEVER, database_url=url,
    )  # fmt: skip
    rows = []
    print(
        f"{'strategy':<12} {'VUs':>4} {'pgbench':>9} {'1 worker':>9} {'ratio':>6} {f'{args.workers} workers':>10} "
        f"{'ratio':>6} {'hold 1w':>8} {'hold Nw':>8} {'µs/o pgb':>8} {'µs/o 1w':>7} {'µs/o Nw':>7}  bar"
    )
    for name in names:
        for vus in levels:
            base = LoadConfig(strategy=name, shape=Closed(vus=vus, think_ms=0), **common)
            reference = run_reference(base)
            one = load_row(base.replace(workers=1))
            many = load_row(base.replace(workers=args.workers))
            ref = reference.orders_per_s
            row = {
                "strategy": name,
                "vus": vus,
                "pgbench_orders_per_s": ref,
                "pgbench_clients": reference.pgbench.clients,
                "pgbench_threads": reference.pgbench.threads,
                "pgbench_cpu_percent": reference.pgbench.client_cpu_percent,
                "pgbench_cpu_us_per_order": cpu_us_per_order(reference.pgbench.client_cpu_percent, ref),
                "pgbench_audit_ok": reference.audit.ok,
                "one": one,
                "many": many,
                "ratio_one": one["orders_per_s"] / ref if ref else None,
                "ratio_many": many["orders_per_s"] / ref if ref else None,
            }
            best = max(row["ratio_one"] or 0, row["ratio_many"] or 0)
            row["meets_bar"] = None if vus not in BAR_VUS else best >= BAR
            rows.append(row)
            print(
                f"{name:<12} {vus:>4} {ref:>9.0f} {one['orders_per_s']:>9.0f} {row['ratio_one']:>6.2f} "
                f"{many['orders_per_s']:>10.0f} {row['ratio_many']:>6.2f} {_ms(one['lock_hold_ms']):>8} "
                f"{_ms(many['lock_hold_ms']):>8} {_us(row['pgbench_cpu_us_per_order']):>8} "
                f"{_us(one['cpu_us_per_order']):>7} {_us(many['cpu_us_per_order']):>7}"
                f"  {'' if row['meets_bar'] is None else ('ok' if row['meets_bar'] else 'BELOW 0.9')}",
                flush=True,
            )
    holds = []
    if "pessimistic" in names or args.lock_hold:
        print("\nlock hold of the seed's flow (client side, per order): 1 VU, then 64 VUs over 1, N and 2N processes")
        for vus, workers in ((1, 1), (64, 1), (64, args.workers), (64, 2 * args.workers)):
            row = {"vus": vus, "workers": workers, **load_row(LoadConfig(
                strategy="pessimistic", shape=Closed(vus=vus, think_ms=0), workers=workers, **common))}  # fmt: skip
            holds.append(row)
            print(
                f"  {vus:>3} VUs {workers:>2} workers: hold {_ms(row['lock_hold_ms'])} ms, "
                f"{row['orders_per_s']:.0f} orders/s (1 / hold = {1000 / row['lock_hold_ms']:.0f})",
                flush=True,
            )
    http_rows = []
    if args.http:
        print(f"\nHTTP: {args.http_strategy} at {args.http_vus} VUs, runner at {args.workers} workers")
        http = dict(
            common, strategy=args.http_strategy, shape=Closed(vus=args.http_vus, think_ms=0), workers=args.workers
        )
        for label, changes in (
            ("in-process", {}),
            ("service x1", {"target": "http", "service": ServiceSettings(workers=1)}),
            (f"service x{args.workers}", {"target": "http", "service": ServiceSettings(workers=args.workers)}),
        ):
            row = {"setup": label, **load_row(LoadConfig(**{**http, **changes}))}
            http_rows.append(row)
            print(
                f"  {label:<12} {row['orders_per_s']:>8.0f} orders/s  p50 {row['p50_ms']:.2f} ms  p95 "
                f"{row['p95_ms']:.2f} ms  client cpu {row['client_cpu_percent']:.0f}%  service cpu "
                f"{_pct(row['service_cpu_percent'])}  audit {'ok' if row['audit_ok'] else 'FAILED'}",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "cores": available_cores(),
                "workers": args.workers,
                "duration_s": args.duration,
                "bar": BAR,
                "rows": rows,
                "lock_hold": holds,
                "http": http_rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out}", file=sys.stderr)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


if __name__ == "__main__":
    main()
