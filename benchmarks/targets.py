"""Issue 17's targets, measured and judged: `make bench` runs this and prints which hold and how far each is.

- **driver / reference**: every safe strategy at 8, 64 and 128 VUs, the in-process driver (`load --target db`,
  no think time, a sale that never sells out) against pgbench replaying its SQL at the same concurrency, back to
  back, with the client (runner or pgbench) on CPUs of its own (`--placement split`): the ratio of medians over
  `--repeats` runs within 0.9 to 1.1. The same pairs unplaced (`free`) are measured beside it, once each.
- **client CPU per order**: the runner's CPU per order at most 2x pgbench's, for pessimistic, atomic and sharded
  at 8 and 64 VUs (split).
- **batched scales**: its orders/s at 128 VUs at least those at 64 (split, medians).
- **the seed's p95**: the seed scenario (10 VUs, 100 ms think, 30 s, through HTTP, a sale that never sells out),
  median p95 over `--repeats` runs at most half the Rust original's (13.36 / 2 = 6.68 ms), with the service on the
  database's CPUs and the client on its own.

Every figure is a median of repeats with its range. A warning is printed when the machine was not quiet (a
1-minute load average above `QUIET_LOAD` a core before the first run; later runs inherit the load of the one
before). Writes everything to data/benchmarks/targets.json. Uses the embedded server as `flashsale db up` leaves
it, and EMPTIES its tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flashsale import config, strategies
from flashsale.db import connection, migrate
from flashsale.experiments.analysis import median_range
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.reference import run_reference
from flashsale.load.summary import cpu_us_per_order
from flashsale.placement import Placement
from flashsale.units import seconds

RATIO_BAND = (0.9, 1.1)
CPU_BAR = 2.0  # client CPU per order, runner over pgbench
CPU_STRATEGIES = ("pessimistic", "atomic", "sharded")
CPU_LEVELS = (8, 64)
SEED_P95_BAR_MS = 13.36 / 2
QUIET_LOAD = 0.5  # 1-minute load average per core above which a run's machine was not quiet
TARGET_FIELDS = ("target", "strategy", "vus", "value", "holds")
NEVER_SELLS_OUT = {"users": 1000, "inventory": 100_000_000, "per_user_limit": 1_000_000}


@dataclass
class Pair:
    """One strategy at one level under one placement: the driver's and pgbench's runs."""

    strategy: str
    vus: int
    placement: str
    driver: list[float] = field(default_factory=list)  # orders/s
    reference: list[float] = field(default_factory=list)
    driver_cpu_us: list[float] = field(default_factory=list)  # client CPU per order, microseconds
    reference_cpu_us: list[float] = field(default_factory=list)
    audits_ok: list[bool] = field(default_factory=list)

    def ratio(self) -> float:
        return _median(self.driver) / _median(self.reference) if self.reference and _median(self.reference) else 0.0

    def cpu_ratio(self) -> float:
        ref = _median(self.reference_cpu_us)
        return _median(self.driver_cpu_us) / ref if ref else float("nan")

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio(), "cpu_ratio": self.cpu_ratio()}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cpu_us(cpu_percent: float | None, orders_per_s: float) -> float:
    """Client CPU per order in microseconds; NaN when either is unknown (a target on it then misses)."""
    value = cpu_us_per_order(cpu_percent, orders_per_s)
    return float("nan") if value is None else value


def measure_pair(pair: Pair, *, duration_s: float, warmup_s: float, url: str, loads: list[float]) -> None:
    where = Placement.named(pair.placement)
    load_config = LoadConfig(
        target="db", strategy=pair.strategy, shape=Closed(vus=pair.vus, think_ms=0), duration_s=duration_s,
        warmup_s=warmup_s, database_url=url, db_cpus=where.db, client_cpus=where.client, **NEVER_SELLS_OUT,
    )  # fmt: skip
    loads.append(os.getloadavg()[0])
    reference = run_reference(load_config)
    pair.reference.append(reference.orders_per_s or float("nan"))  # None: redis-benchmark not installed
    pair.reference_cpu_us.append(_cpu_us(reference.client_cpu_percent, reference.orders_per_s or 0.0))
    loads.append(os.getloadavg()[0])
    summary = run_load(load_config).summary
    pair.driver.append(summary["orders_per_s"])
    pair.driver_cpu_us.append(_cpu_us(summary["client_cpu_percent"], summary["orders_per_s"]))
    pair.audits_ok += [reference.audit.ok, summary["audit"]["ok"]]


def seed_runs(repeats: int, duration_s: float, url: str, loads: list[float]) -> list[dict[str, Any]]:
    where = Placement.named("split")
    runs = []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        seed = LoadConfig(
            target="http", strategy="pessimistic", shape=Closed(vus=10, think_ms=100), duration_s=duration_s,
            database_url=url, users=100, inventory=100_000_000, per_user_limit=1_000_000, db_cpus=where.db,
            client_cpus=where.client,
        )  # fmt: skip
        summary = run_load(seed).summary
        runs.append({"latency_ms": summary["latency_ms"], "rps": summary["rps"], "audit_ok": summary["audit"]["ok"]})
    return runs


def verdict(ok: bool) -> str:
    return "holds" if ok else "MISSES"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=strategies.names(safe=True), choices=strategies.names())
    parser.add_argument("--vus", nargs="+", type=int, default=[8, 64, 128])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each split pair and of the seed (default 3)")
    parser.add_argument("--duration", type=seconds, default=2.0, help="each driver and pgbench run (default 2s)")
    parser.add_argument("--warmup", type=seconds, default=0.5)
    parser.add_argument("--seed-duration", type=seconds, default=30.0, help="each seed run (default 30s; 0: skip)")
    parser.add_argument("--no-free", dest="free", action="store_false", help="skip the unplaced pairs")
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "targets.json"))
    args = parser.parse_args()

    url = connection.database_url()
    with connection.connect(url) as conn:
        migrate.migrate(conn)
    quiet_before = os.getloadavg()[0]  # before our own runs: the ones after inherit the load of the one before
    loads: list[float] = []
    split = Placement.named("split")
    print(f"placement split: database on CPUs {split.db}, client on {split.client}; {args.repeats} repeats")
    pairs: list[Pair] = []
    print(f"{'strategy':<20}{'VUs':>5} {'placement':<9} {'driver o/s':>24} {'pgbench o/s':>24} {'ratio':>6} "
          f"{'cpu us/order driver':>20} {'pgbench':>8}")  # fmt: skip
    for name in args.strategies:
        for vus in args.vus:
            for placement, repeats in (("split", args.repeats), ("free", 1 if args.free else 0)):
                if not repeats:
                    continue
                pair = Pair(name, vus, placement)
                for _ in range(repeats):
                    measure_pair(pair, duration_s=args.duration, warmup_s=args.warmup, url=url, loads=loads)
                pairs.append(pair)
                driver, reference = (median_range(rates, "{:,.0f}") for rates in (pair.driver, pair.reference))
                print(
                    f"{name:<20}{vus:>5} {placement:<9} {driver:>24} {reference:>24} "
                    f"{pair.ratio():>6.2f} {_median(pair.driver_cpu_us):>20.1f} {_median(pair.reference_cpu_us):>8.1f}"
                    + ("" if all(pair.audits_ok) else "  AUDIT FAILED"),
                    flush=True,
                )
    seeds = seed_runs(args.repeats, args.seed_duration, url, loads) if args.seed_duration else []

    print("\nTargets (split placement unless said):")
    results = []
    placed = [p for p in pairs if p.placement == "split"]
    for pair in placed:
        ok = RATIO_BAND[0] <= pair.ratio() <= RATIO_BAND[1]
        results.append(("ratio", pair.strategy, pair.vus, pair.ratio(), ok))
        print(f"  {pair.strategy} at {pair.vus} VUs: driver / pgbench {pair.ratio():.2f} "
              f"(band {RATIO_BAND[0]}-{RATIO_BAND[1]}): {verdict(ok)}")  # fmt: skip
    for pair in placed:
        if pair.strategy in CPU_STRATEGIES and pair.vus in CPU_LEVELS:
            ok = pair.cpu_ratio() <= CPU_BAR
            results.append(("client_cpu", pair.strategy, pair.vus, pair.cpu_ratio(), ok))
            print(f"  {pair.strategy} at {pair.vus} VUs: client CPU per order {_median(pair.driver_cpu_us):.1f} us, "
                  f"{pair.cpu_ratio():.2f}x pgbench's (bar {CPU_BAR}x): {verdict(ok)}")  # fmt: skip
    batched = {p.vus: _median(p.driver) for p in placed if p.strategy == "batched"}
    if 64 in batched and 128 in batched:
        ok = batched[128] >= batched[64]
        results.append(("batched_scales", "batched", 128, batched[128] / batched[64], ok))
        print(f"  batched: {batched[128]:,.0f} orders/s at 128 VUs against {batched[64]:,.0f} at 64 "
              f"({batched[128] / batched[64]:.2f}x): {verdict(ok)}")  # fmt: skip
    if seeds:
        p95s = [s["latency_ms"]["p95"] for s in seeds]
        ok = _median(p95s) <= SEED_P95_BAR_MS
        results.append(("seed_p95", "pessimistic", 10, _median(p95s), ok))
        print(f"  seed scenario p95 {median_range(p95s)} ms over {len(seeds)} runs "
              f"(p50 {median_range([s['latency_ms']['p50'] for s in seeds])}, "
              f"p99 {median_range([s['latency_ms']['p99'] for s in seeds])}, "
              f"max {median_range([s['latency_ms']['max'] for s in seeds])}) "
              f"against {SEED_P95_BAR_MS:.2f} ms: {verdict(ok)}")  # fmt: skip
    held = sum(r[-1] for r in results)
    print(f"\n{held} of {len(results)} targets hold.")
    per_core = quiet_before / (os.cpu_count() or 1)
    if per_core > QUIET_LOAD:
        print(f"WARNING: the machine was not quiet: load average {quiet_before:.2f} before the first run "
              f"({per_core:.2f} a core; quiet is under {QUIET_LOAD}). Treat these figures as noisy.")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "placement": split.__dict__,
                "pairs": [p.as_json() for p in pairs],
                "seed_runs": seeds,
                "targets": [dict(zip(TARGET_FIELDS, r, strict=True)) for r in results],
                "load_average_before": quiet_before,
                "load_average_max": max(loads, default=None),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {out}")


if __name__ == "__main__":
    main()
