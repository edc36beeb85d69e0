"""The seed scenario under each placement and think-time model: which gives what to its p95.

The seed's load test (10 VUs, 100 ms think, through HTTP, a sale that never sells out) is run `--repeats` times for
each cell of placement x think model, each run starting its own service, and each cell's p50, p95 and p99 are
printed as the median of its runs with their range, beside the service's CPU per request (its processes' user +
system time over the requests it answered). The placements (on N CPUs; on 2: CPU 0 and CPU 1):

- `split`: the database and the service on the first CPUs, the client on the last quarter (`--placement split`);
- `service apart`: the database alone on the first CPUs, the service and the client on the last quarter (the
  client still never shares the database's CPUs, but shares the service's);
- `free`: nothing placed.

Think models: `exact` (every pause 100 ms, as the seed's k6 script) and `jitter` (uniform in 50-150 ms,
`--think-jitter 0.5`: buyers that do not act in step). The bar is half the Rust original's p95 (6.68 ms).
Writes data/benchmarks/seed_grid.json. Uses the embedded server as `flashsale db up` leaves it, and EMPTIES its
tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config
from flashsale.experiments.analysis import median_range
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.placement import Placement
from flashsale.units import seconds

SEED_P95_BAR_MS = 13.36 / 2
THINK = {"exact": 0.0, "jitter": 0.5}


def placements() -> dict[str, Placement | None]:
    split = Placement.named("split")
    return {
        "split": split,
        "service apart": Placement(db=split.db, service=split.client, client=split.client),
        "free": None,
    }


def run_cell(where: Placement | None, jitter: float, duration_s: float) -> dict:
    cpus = {} if where is None else {"db_cpus": where.db, "service_cpus": where.service, "client_cpus": where.client}
    load = LoadConfig(
        target="http", strategy="pessimistic", shape=Closed(vus=10, think_ms=100, think_jitter=jitter),
        duration_s=duration_s, users=100, inventory=100_000_000, per_user_limit=1_000_000, **cpus,
    )  # fmt: skip
    summary = run_load(load).summary
    service = summary["meta"].get("service_cpu_percent")
    per_request_ms = service / 100 / summary["rps"] * 1000 if service and summary["rps"] else float("nan")
    return {
        "latency_ms": summary["latency_ms"],
        "rps": summary["rps"],
        "service_cpu_ms_per_request": per_request_ms,
        "audit_ok": summary["audit"]["ok"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=seconds, default=15.0)
    parser.add_argument("--placements", nargs="+", default=list(placements()), choices=list(placements()))
    parser.add_argument("--think", nargs="+", default=list(THINK), choices=list(THINK))
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "seed_grid.json"))
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.repeats} runs of {args.duration:g} s a cell")
    print(f"{'placement':<14} {'think':<7} {'p50 ms':>18} {'p95 ms':>20} {'p99 ms':>20} {'service ms/req':>15}")
    cells = []
    for name in args.placements:
        where = placements()[name]
        for think in args.think:
            runs = [run_cell(where, THINK[think], args.duration) for _ in range(args.repeats)]
            p = {q: [r["latency_ms"][q] for r in runs] for q in ("p50", "p95", "p99")}
            cpu = statistics.median(r["service_cpu_ms_per_request"] for r in runs)
            mark = " <= bar" if statistics.median(p["p95"]) <= SEED_P95_BAR_MS else ""
            audits = "" if all(r["audit_ok"] for r in runs) else "  AUDIT FAILED"
            print(
                f"{name:<14} {think:<7} {median_range(p['p50']):>18} {median_range(p['p95']):>20} "
                f"{median_range(p['p99']):>20} {cpu:>15.2f}{mark}{audits}",
                flush=True,
            )
            cells.append({"placement": name, "cpus": where.__dict__ if where else None, "think": think, "runs": runs})
    print(f"\nbar: p95 <= {SEED_P95_BAR_MS:.2f} ms (half the Rust original's 13.36)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    measured = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "load_average": os.getloadavg()}
    out.write_text(json.dumps({**measured, "cells": cells}, indent=2, default=str) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
