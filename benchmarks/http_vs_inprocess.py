"""POST /api/orders through HTTP against the same strategy called in-process: orders/s and latency at N concurrent
clients with no think time, same strategy, same pool size, paths alternated, median of the repeats.

Issue 3's target: HTTP delivers at least 0.6x the in-process orders/s. The exit status says whether it did
(0 yes, 1 no), so a quiet machine can use it as a gate. Each run starts from a fresh scenario whose stock and
per-user limit never run out, so every request is a real order (the hot-row path, not a fast refusal).

    .venv/bin/python benchmarks/http_vs_inprocess.py                      # 3 x (10 s + 2 s warm-up) per path
    .venv/bin/python benchmarks/http_vs_inprocess.py --duration 3s --warmup 1s --repeat 1    # smoke

It EMPTIES the tables of the database it uses: FLASHSALE_DATABASE_URL if set, else the embedded server under
.flashsale/ (started if needed, and stopped again if this script started it). Results are printed and saved as
JSON under data/benchmarks/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from flashsale import aio, config, strategies
from flashsale.db import connection, embedded
from flashsale.db.migrate import ready_url
from flashsale.domain import DomainError, PlaceOrder
from flashsale.repositories import users
from flashsale.services import scenario
from flashsale.serving.server_process import ServerProcess
from flashsale.strategies import StrategyUnavailable
from flashsale.units import seconds

TARGET_RATIO = 0.6
NEVER_RUNS_OUT = 2**31 - 1
RESULTS_DIR = config.DATA_DIR / "benchmarks"


@dataclass(frozen=True)
class Measurement:
    path: str  # "in-process" or "http"
    repeat: int
    orders: int  # created within the measured window
    orders_per_s: float
    p50_ms: float
    p95_ms: float
    outcomes: dict[str, int]


async def drive(
    one_order: Callable[[int], Awaitable[str]], *, clients: int, warmup: float, duration: float
) -> tuple[Counter[str], list[float]]:
    """`clients` loops calling `one_order(n)` back to back; outcomes and latencies of the calls that completed
    inside the measured window (after the warm-up)."""
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + duration
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []

    async def client(n: int) -> None:
        while (started := loop.time()) < stop_at:
            outcome = await one_order(n)
            done = loop.time()
            if measure_from <= done <= stop_at:
                outcomes[outcome] += 1
                latencies.append(done - started)
            n += clients

    await asyncio.gather(*(client(i) for i in range(clients)))
    return outcomes, latencies


async def fresh_scenario(url: str, n_users: int) -> tuple[scenario.Scenario, list]:
    conn = await connection.connect_async(url)
    async with conn:
        made = await scenario.reset(conn, users=n_users, inventory=NEVER_RUNS_OUT, per_user_limit=NEVER_RUNS_OUT)
        return made, await users.list_ids(conn, limit=n_users)


async def in_process(url: str, args: argparse.Namespace) -> tuple[Counter[str], list[float]]:
    made, user_ids = await fresh_scenario(url, args.users)
    commands = [PlaceOrder(user_id=u, flash_sale_id=made.flash_sale_id, quantity=1) for u in user_ids]
    strategy = strategies.get_strategy(args.strategy)
    pool = connection.make_pool(url, size=args.pool_size)
    async with pool:
        await pool.wait()
        await strategy.start(pool)
        try:

            async def one_order(n: int) -> str:
                try:
                    await strategy.place_order(pool, commands[n % len(commands)])
                except (DomainError, StrategyUnavailable) as exc:
                    return exc.code
                return "created"

            return await drive(one_order, clients=args.clients, warmup=args.warmup, duration=args.duration)
        finally:
            await strategy.stop()


async def over_http(url: str, args: argparse.Namespace, log_dir: Path) -> tuple[Counter[str], list[float]]:
    made, user_ids = await fresh_scenario(url, args.users)
    bodies = [
        json.dumps({"user_id": str(u), "flash_sale_id": str(made.flash_sale_id), "quantity": 1}).encode()
        for u in user_ids
    ]
    server = ServerProcess(
        strategy=args.strategy, pool_size=args.pool_size, access_log=False, log_path=log_dir / "serve.log"
    )
    # The server is started after the reset, so that a strategy that keeps state sees this scenario only.
    await asyncio.to_thread(server.start)
    try:
        connector = aiohttp.TCPConnector(limit=args.clients)  # its default limit of 100 would cap larger N silently
        async with aiohttp.ClientSession(base_url=server.url, connector=connector) as session:
            headers = {"Content-Type": "application/json"}

            async def one_order(n: int) -> str:
                try:
                    async with session.post("/api/orders", data=bodies[n % len(bodies)], headers=headers) as reply:
                        await reply.read()
                        return "created" if reply.status == 201 else f"http_{reply.status}"
                except aiohttp.ClientError as exc:
                    return f"client_error:{type(exc).__name__}"

            return await drive(one_order, clients=args.clients, warmup=args.warmup, duration=args.duration)
    finally:
        await asyncio.to_thread(server.stop)


def measure(path: str, repeat: int, outcomes: Counter[str], latencies: list[float], duration: float) -> Measurement:
    created = outcomes.get("created", 0)
    ordered = sorted(latencies) or [float("nan")]
    return Measurement(
        path=path,
        repeat=repeat,
        orders=created,
        orders_per_s=created / duration,
        p50_ms=1000 * ordered[len(ordered) // 2],
        p95_ms=1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        outcomes=dict(outcomes),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients, no think time (default 50)")
    parser.add_argument("--duration", type=seconds, default="10s", help="measured time per run (default 10s)")
    parser.add_argument("--warmup", type=seconds, default="2s", help="unmeasured time before it (default 2s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; the median is compared (default 3)")
    parser.add_argument("--strategy", default=strategies.DEFAULT_STRATEGY, choices=strategies.names())
    parser.add_argument("--pool-size", type=int, default=8, help="connections, for both paths (default 8)")
    parser.add_argument("--users", type=int, default=1000, help="buyers the orders rotate over (default 1000)")
    parser.add_argument("--out", type=Path, help=f"result file (default {RESULTS_DIR}/http_vs_inprocess-<time>.json)")
    args = parser.parse_args(argv)
    if min(args.clients, args.repeat, args.pool_size, args.users) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--clients, --repeat, --pool-size, --users and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started_embedded = config.external_database_url() is None and embedded.running() is None
    url = ready_url()
    runs: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="flashsale-bench-") as log_dir:
            for repeat in range(args.repeat):
                # Alternate which path goes first, so that drift (caches, autovacuum, a neighbour) hits both.
                order = ("in-process", "http") if repeat % 2 == 0 else ("http", "in-process")
                for path in order:
                    run = in_process(url, args) if path == "in-process" else over_http(url, args, Path(log_dir))
                    outcomes, latencies = aio.run(run)
                    runs.append(measure(path, repeat, outcomes, latencies, args.duration))
                    print(_run_line(runs[-1]), flush=True)
    finally:
        if started_embedded:
            embedded.stop()

    median = {
        path: statistics.median(r.orders_per_s for r in runs if r.path == path) for path in ("in-process", "http")
    }
    ratio = median["http"] / median["in-process"] if median["in-process"] else float("nan")
    met = ratio >= TARGET_RATIO
    print(
        f"median orders/s: in-process {median['in-process']:,.0f}, http {median['http']:,.0f}; "
        f"http / in-process = {ratio:.2f} (target >= {TARGET_RATIO}): {'met' if met else 'NOT met'}"
    )
    out = args.out or RESULTS_DIR / f"http_vs_inprocess-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "http_vs_inprocess",
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "settings": {k: v for k, v in vars(args).items() if k != "out"},
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "runs": [asdict(r) for r in runs],
                "median_orders_per_s": median,
                "ratio": ratio,
                "target_ratio": TARGET_RATIO,
                "target_met": met,
            },
            indent=2,
        )
    )
    print(f"saved {out}")
    return 0 if met else 1


def _run_line(run: Measurement) -> str:
    others = {k: v for k, v in run.outcomes.items() if k != "created"}
    return (
        f"run {run.repeat + 1} {run.path:>10}: {run.orders_per_s:8,.0f} orders/s  p50 {run.p50_ms:6.1f} ms  "
        f"p95 {run.p95_ms:6.1f} ms" + (f"  other outcomes {others}" if others else "")
    )


if __name__ == "__main__":
    sys.exit(main())
