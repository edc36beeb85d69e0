"""The load runner's own cost per request, measured against no-op targets (no database, no network).

- closed, instant: `order` returns without suspending; requests/s of one VU give the whole loop's cost
  (pick a user, two clock reads, the await, the record), and the recorded latencies are the timer's own floor;
- closed, one loop pass: `order` yields to the event loop once, as every real I/O does;
- open: the dispatcher at a fixed rate; CPU time per request of the whole process.

The bar: under 50 µs a request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from flashsale import aio, config
from flashsale.load import Closed, Open, Outcomes, RecordBuffer, run_closed, run_open
from flashsale.load.workloads import shared
from flashsale.units import seconds

BAR_US = 50.0
CREATED = (Outcomes().id("created"), 0)


async def instant(user: int) -> tuple[int, int]:
    return CREATED


async def one_loop_pass(user: int) -> tuple[int, int]:
    await asyncio.sleep(0)
    return CREATED


async def measure(duration_s: float, rate: float) -> list[dict]:
    rows = []
    for name, order in (("closed, instant", instant), ("closed, one loop pass", one_loop_pass)):
        records = RecordBuffer()
        cpu = time.process_time()
        stats = await run_closed(
            Closed(vus=1, think_ms=0), lambda o=order: shared(o), records, users=1000, duration_s=duration_s
        )
        cpu = time.process_time() - cpu
        latency_us = np.frombuffer(records.latency_ns, dtype=np.int64) / 1e3
        rows.append(_row(name, len(records), stats.elapsed_s, cpu, latency_us))
    records = RecordBuffer()
    cpu = time.process_time()
    stats = await run_open(
        Open(rate=rate, max_inflight=10_000), one_loop_pass, records, users=1000, duration_s=duration_s
    )
    cpu = time.process_time() - cpu
    latency_us = np.frombuffer(records.latency_ns, dtype=np.int64) / 1e3
    row = _row(f"open, {rate:g}/s, one loop pass", len(records), stats.elapsed_s, cpu, latency_us)
    row.update(late_starts=stats.late_starts, dropped_starts=stats.dropped_starts)
    rows.append(row)
    return rows


def _row(name: str, requests: int, elapsed_s: float, cpu_s: float, latency_us: np.ndarray) -> dict:
    return {
        "workload": name,
        "requests": requests,
        "wall_us_per_request": elapsed_s / requests * 1e6,
        "cpu_us_per_request": cpu_s / requests * 1e6,
        "recorded_latency_us": {
            "p50": float(np.percentile(latency_us, 50)),
            "p99": float(np.percentile(latency_us, 99)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=seconds, default=5.0, help="each measurement (default 5s)")
    parser.add_argument("--rate", type=float, default=5000.0, help="open model rate (default 5000/s)")
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "timing_overhead.json"))
    args = parser.parse_args()
    rows = aio.run(measure(args.duration, args.rate))
    print(
        f"{'workload':<32} {'requests':>9} {'wall µs/req':>12} {'cpu µs/req':>11} {'latency p50 µs':>15} {'p99 µs':>8}"
    )
    for r in rows:
        lat = r["recorded_latency_us"]
        print(
            f"{r['workload']:<32} {r['requests']:>9} {r['wall_us_per_request']:>12.2f} "
            f"{r['cpu_us_per_request']:>11.2f} {lat['p50']:>15.2f} {lat['p99']:>8.2f}"
        )
    worst = max(r["cpu_us_per_request"] for r in rows)
    print(f"worst CPU per request {worst:.1f} µs: {'within' if worst < BAR_US else 'ABOVE'} the {BAR_US:g} µs bar")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"bar_us": BAR_US, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows}, indent=2
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
