"""Orders per second of every locking strategy side by side, on one database, in one run.

Each strategy gets a fresh scenario whose stock never runs out and whose per-user limit never binds (so every
order is a full order: lock, check, decrement, insert), then the load runner's in-process closed model runs
`--vus` virtual users placing orders back to back (no think time, one pooled connection each) for `--duration`
after `--warmup`, and audits the sale. Then pgbench replays each strategy's own script as its `pgbench_plan` says
(as many clients; one client with a batch per transaction for `batched`) on a fresh scenario: the database's own
ceiling for the same statements, without the Python client (`ref o/s`). For `redis_gate` the line is
redis-benchmark sending its Lua script (its decisions, each an order here: the stock never runs out).

Prints a table with each strategy's ratio to `pessimistic` and writes the rows to data/benchmarks/strategies.json.
The issue's bar: the best safe strategy reaches 10x `pessimistic`.

    .venv/bin/python benchmarks/strategies.py                      # 10 s each, all strategies, then pgbench
    .venv/bin/python benchmarks/strategies.py --duration 2 --warmup 0.5 --pgbench-duration 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config, strategies
from flashsale.db import connection, migrate
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.reference import run_reference

BAR = 10.0
NEVER = 2**31 - 1  # stock and per-user limit that a run cannot exhaust


def measure(url: str, name: str, *, vus: int, users_n: int, duration: float, warmup: float, seed: int) -> dict:
    """The load runner's closed model, in-process (`flashsale load --target db --think-ms 0`), as notebooks run it."""
    result = run_load(
        LoadConfig(
            target="db",
            strategy=name,
            shape=Closed(vus=vus, think_ms=0),
            duration_s=duration,
            warmup_s=warmup,
            users=users_n,
            inventory=NEVER,
            per_user_limit=NEVER,
            seed=seed,
            database_url=url,
        )
    )
    summary = result.summary
    requests = len(result.records)  # warmup included, as in the strategy's counters
    counters = summary["meta"].get("strategy_counters") or {}
    return {
        "strategy": name,
        "safe": strategies.STRATEGIES[name].safe,
        "orders_per_s": summary["orders_per_s"],
        "outcomes": summary["outcomes"],
        "p50_ms": summary["latency_ms"]["p50"],
        "p99_ms": summary["latency_ms"]["p99"],
        "client_cpu_percent": summary["client_cpu_percent"],
        "counters_per_request": {k: round(v / requests, 2) for k, v in counters.items()} if requests else {},
        "audit_ok": summary["audit"]["ok"],
        "audit_problems": summary["meta"].get("audit_problems", []),
    }


def pgbench(url: str, name: str, *, vus: int, users_n: int, duration: int) -> dict:
    """The strategy's reference line (`flashsale bench pgbench`, or `bench redis` for `redis_gate`), its orders/s
    taken from what the audit found sold (or, for redis-benchmark, what its decisions admitted)."""
    reference = run_reference(
        LoadConfig(
            target="db",
            strategy=name,
            shape=Closed(vus=vus),
            duration_s=duration,
            users=users_n,
            inventory=NEVER,
            per_user_limit=NEVER,
            database_url=url,
        )
    )
    return {
        "strategy": name,
        "tool": reference.kind,
        "clients": reference.clients,
        "tps": reference.requests_per_s,
        "orders_per_transaction": getattr(reference.plan, "orders_per_transaction", 1),
        # What was sold, whatever the transactions did (a conflict or a busy row sells nothing in a script).
        "orders_per_s": reference.orders_per_s,
        "failed": reference.pgbench.failed if reference.pgbench is not None else None,
        "missing": reference.missing,
        "audit_ok": reference.audit.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=strategies.names(), choices=strategies.names())
    parser.add_argument("--vus", type=int, default=64, help="virtual users (default 64)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per strategy (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument("--users", type=int, default=10_000, help="users in the scenario (default 10000)")
    parser.add_argument("--pgbench-duration", type=int, default=10, help="seconds per pgbench run; 0 skips pgbench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "strategies.json"))
    args = parser.parse_args()

    url = connection.database_url()
    with connection.connect(url) as conn:
        migrate.migrate(conn)
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]
            for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
        }

    rows = []
    for name in args.strategies:
        print(f"  measuring {name} ...", flush=True)
        rows.append(
            measure(
                url, name, vus=args.vus, users_n=args.users, duration=args.duration, warmup=args.warmup, seed=args.seed
            )
        )
    bench = {}
    if args.pgbench_duration > 0:
        for name in args.strategies:
            print(f"  pgbench {name} ...", flush=True)
            bench[name] = pgbench(url, name, vus=args.vus, users_n=args.users, duration=args.pgbench_duration)

    report(rows, bench, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
                "postgres": settings,
                "parameters": vars(args),
                "flashsale": rows,
                "pgbench": list(bench.values()),
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")


def report(rows: list[dict], bench: dict, args: argparse.Namespace) -> None:
    base = next((r["orders_per_s"] for r in rows if r["strategy"] == "pessimistic"), None)
    bench_base = bench.get("pessimistic", {}).get("orders_per_s")
    print(
        f"\n{args.vus} virtual users, no think time, {args.duration:g} s measured after {args.warmup:g} s warmup; "
        f"stock and limit never bind; cpu % = the Python client's share of one core\n"
    )
    header = (
        f"{'strategy':<20} {'orders/s':>9} {'x pess':>7} {'p50 ms':>7} {'p99 ms':>8} {'cpu %':>6}  "
        f"{'ref o/s':>9} {'x pess':>7}  {'audit':<6} other outcomes; counters per request"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        b = bench.get(r["strategy"])
        other = {k: v for k, v in r["outcomes"].items() if k != "created"}
        notes = "; ".join(
            filter(None, [", ".join(f"{k} {v}" for k, v in other.items()), _fmt(r["counters_per_request"])])
        )
        label = r["strategy"] + ("" if r["safe"] else " (UNSAFE)")
        measured = b is not None and b["orders_per_s"] is not None  # None: the tool is missing here
        bench_rate = f"{b['orders_per_s']:.0f}" if measured else "-"
        bench_ratio = _ratio(b["orders_per_s"], bench_base) if measured else "-"
        audit = "ok" if r["audit_ok"] else "FAILED"
        print(
            f"{label:<20} {r['orders_per_s']:>9.0f} {_ratio(r['orders_per_s'], base):>7} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>8.1f} {r['client_cpu_percent']:>6.0f}  "
            f"{bench_rate:>9} {bench_ratio:>7}  {audit:<6} {notes}"
        )
    safe = [r for r in rows if r["safe"] and r["strategy"] != "pessimistic"]
    if base and safe:
        best = max(safe, key=lambda r: r["orders_per_s"])
        ratio = best["orders_per_s"] / base
        verdict = "meets" if ratio >= BAR else "misses"
        print(f"\nbest safe strategy: {best['strategy']} at {ratio:.1f}x pessimistic ({verdict} the {BAR:g}x bar)")
    if any(not r["audit_ok"] and r["safe"] for r in rows):
        print("!! a safe strategy failed its audit")


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.1f}x" if base else "-"


def _fmt(counters: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counters.items())


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
