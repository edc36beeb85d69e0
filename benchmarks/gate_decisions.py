"""Issue 18's stock-gate target: `redis_gate`'s decisions per second at least 0.8x the redis-benchmark line (Debian's
`redis-benchmark` sending the gate's own decide script, EVALSHA, with the same number of clients).

For each level (`--vus`, default 8 64) and each sale: `sold-out` (50 units, one per user, 1000 users: after the
first 50 every decision is a refusal taken in Redis alone, as in a real flash sale) and `never` (a sale that never
sells out: every decision admits, and each admitted order is written to PostgreSQL, which redis-benchmark's never
are): redis-benchmark on a fresh sale, then the load runner in-process (`--target db`, no think time) on a fresh
sale, back to back, `--repeats` times, the client on CPUs of its own (`split`). Decisions/s: the runner's answered
requests per second; redis-benchmark's script calls per second. The target is judged on the sold-out sale, where
both sides make the same decisions; the never-sells-out ratio says what the database's writes cost.

Needs `flashsale db up`, `flashsale redis up` and redis-benchmark (`apt-get install redis-tools`); EMPTIES the
database's tables. Writes data/benchmarks/gate_decisions.json.

    python benchmarks/gate_decisions.py --vus 8 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.reference import run_reference
from flashsale.placement import Placement
from flashsale.units import seconds

BAR = 0.8
SALES = {
    "sold-out": {"users": 1000, "inventory": 50, "per_user_limit": 1},
    "never": {"users": 1000, "inventory": 100_000_000, "per_user_limit": 1_000_000},
}


def pair(vus: int, sale: str, args: argparse.Namespace) -> tuple[float, float, bool]:
    """(runner decisions/s, redis-benchmark decisions/s, both audits held)."""
    where = Placement.named("split")
    load = LoadConfig(
        target="db", strategy="redis_gate", shape=Closed(vus=vus, think_ms=0), duration_s=args.duration,
        warmup_s=args.warmup, db_cpus=where.db, client_cpus=where.client, **SALES[sale],
    )  # fmt: skip
    reference = run_reference(load, requests=args.requests)
    if reference.requests_per_s is None:
        raise SystemExit(f"no reference line: {reference.missing}")
    summary = run_load(load).summary
    return summary["rps"], reference.requests_per_s, reference.audit.ok and summary["audit"]["ok"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vus", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--duration", type=seconds, default=5.0, help="each runner run (default 5s)")
    parser.add_argument("--warmup", type=seconds, default=0.5)
    parser.add_argument("--requests", type=int, default=100_000, help="redis-benchmark's script calls (default 1e5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "gate_decisions.json"))
    args = parser.parse_args()
    load1 = os.getloadavg()[0]
    rows = []
    for vus in args.vus:
        for sale in SALES:
            runs = [pair(vus, sale, args) for _ in range(args.repeats)]
            ratios = [runner / reference for runner, reference, _ in runs]
            row = {
                "vus": vus,
                "sale": sale,
                "runner_median": statistics.median(r for r, _, _ in runs),
                "reference_median": statistics.median(ref for _, ref, _ in runs),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "audits_ok": all(ok for _, _, ok in runs),
            }
            rows.append(row)
            print(
                f"{vus:4} VUs, {sale:8}: runner {row['runner_median']:8.0f}/s, redis-benchmark "
                f"{row['reference_median']:8.0f}/s, ratio {row['ratio_median']:.2f} "
                f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}), audits {'ok' if row['audits_ok'] else 'FAILED'}",
                flush=True,
            )
    judged = [row for row in rows if row["sale"] == "sold-out"]
    holds = all(row["ratio_median"] >= BAR for row in judged)
    print(f"target (sold-out median ratio >= {BAR} at every level): {'HOLDS' if holds else 'MISSED'}")
    print(f"1-minute load average before the first run: {load1:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"when": datetime.now(UTC).isoformat(), "load1_before": load1, **vars(args)}
    out.write_text(json.dumps({"meta": meta, "rows": rows, "holds": holds}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
