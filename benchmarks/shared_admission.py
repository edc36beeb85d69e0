"""Issue 18's admission target: with `serve --admission redis`, one user's admitted orders per second stay within 5 %
of `--user-rate` whatever the number of service processes; with local admission they grow with the processes.

For each number of processes (`--processes`, default 1 2 4) and each admission (local, redis): a service started
with `--workers N --user-rate R` (a burst of R) on a sale that never sells out, and `--vus` virtual users ordering
as one single user with no think time for `--warmup` (which spends the burst) then `--duration`, measured,
repeated `--repeats` times. An order is admitted when its
answer is anything but 429 `rate_limited`; admitted/s = admitted orders / measured seconds, reported as a ratio to
R (median and range over the repeats). The target holds when every redis ratio is within 0.95-1.05.

Needs `flashsale db up` and `flashsale redis up` (or FLASHSALE_REDIS_URL); EMPTIES the database's tables. Writes
data/benchmarks/shared_admission.json.

    python benchmarks/shared_admission.py --processes 1 2 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import UTC, datetime
from pathlib import Path

from flashsale import config
from flashsale.http.settings import ServiceSettings
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.units import seconds

BAND = (0.95, 1.05)
RATE_LIMITED = "rate_limited"


def admitted_per_second(processes: int, admission: str, args: argparse.Namespace) -> float:
    result = run_load(
        LoadConfig(
            target="http",
            strategy="atomic",
            shape=Closed(vus=args.vus, think_ms=0),
            duration_s=args.duration,
            warmup_s=args.warmup,  # the burst is spent in it: what is measured is the pace after the burst
            users=1,
            inventory=100_000_000,
            per_user_limit=100_000_000,
            service=ServiceSettings(workers=processes, admission=admission, user_rate=args.rate, access_log=False),
        )
    )
    outcomes = result.summary["outcomes"]
    admitted = sum(count for outcome, count in outcomes.items() if outcome != RATE_LIMITED)
    return admitted / result.summary["duration_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rate", type=float, default=20.0, help="--user-rate (default 20 orders/s)")
    parser.add_argument("--vus", type=int, default=16)
    parser.add_argument("--duration", type=seconds, default=10.0)
    parser.add_argument("--warmup", type=seconds, default=3.0, help="excluded, with the burst (default 3s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "shared_admission.json"))
    args = parser.parse_args()
    load1 = os.getloadavg()[0]
    rows = []
    for processes in args.processes:
        for admission in ("local", "redis"):
            ratios = [admitted_per_second(processes, admission, args) / args.rate for _ in range(args.repeats)]
            row = {
                "processes": processes,
                "admission": admission,
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "ratios": ratios,
            }
            rows.append(row)
            print(
                f"{processes} process(es), {admission:5}: admitted/limit {row['ratio_median']:.3f} "
                f"({row['ratio_min']:.3f}-{row['ratio_max']:.3f}, {args.repeats} runs)",
                flush=True,
            )
    shared = [row for row in rows if row["admission"] == "redis"]
    holds = all(BAND[0] <= row["ratio_min"] and row["ratio_max"] <= BAND[1] for row in shared)
    worst = max(abs(row[k] - 1) for row in shared for k in ("ratio_min", "ratio_max"))
    print(f"target (redis within {BAND[0]}-{BAND[1]} of the limit at every count): {'HOLDS' if holds else 'MISSED'}")
    print(f"worst redis deviation: {worst:.1%}; 1-minute load average before the first run: {load1:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"when": datetime.now(UTC).isoformat(), "load1_before": load1, **vars(args)}
    out.write_text(json.dumps({"meta": meta, "rows": rows, "holds": holds}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
