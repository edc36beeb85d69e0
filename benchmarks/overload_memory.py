"""The order service's memory under a long overload: it must stay flat, because every queue is bounded.

`flashsale serve` runs with one pooled connection, `--max-waiting 8` and `--pool-timeout 300ms`; the script holds the
sale's row lock for the whole run, so the one order that gets the connection blocks and every other request is
refused (503 `overloaded` at once, or `unavailable` after the pool timeout), while the load runner's open model
sends `--rate` requests a second. The service's resident memory is sampled every second. The bar: it grows by less
than `--max-growth` MB from the end of the first tenth of the run to the end (exit status 0 if so, 1 if not).

    .venv/bin/flashsale db up
    .venv/bin/python benchmarks/overload_memory.py --duration 60s --rate 1500
    .venv/bin/flashsale db down

It EMPTIES the tables of the database it uses (FLASHSALE_DATABASE_URL, else the embedded server). Results are
printed and saved as JSON under data/benchmarks/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg

from flashsale import aio, config
from flashsale.cli.db import ready_url
from flashsale.db import connection
from flashsale.load import LoadConfig, Open, run_load_async
from flashsale.services import scenario
from flashsale.serving.server_process import ServerProcess
from flashsale.units import seconds

RESULTS_DIR = config.DATA_DIR / "benchmarks"
NEVER_RUNS_OUT = 2**31 - 1


async def overload(url: str, server: ServerProcess, *, duration_s: float, rate: float) -> tuple[dict, list]:
    conn = await connection.connect_async(url)
    async with conn:
        made = await scenario.reset(conn, users=100, inventory=NEVER_RUNS_OUT, per_user_limit=NEVER_RUNS_OUT)
    service = psutil.Process(server.pid)
    samples: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def sample() -> None:
        while True:
            samples.append((loop.time() - started, service.memory_info().rss))
            await asyncio.sleep(1.0)

    holder = await psycopg.AsyncConnection.connect(url)
    async with holder:
        await holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])
        sampler = asyncio.create_task(sample())
        load = LoadConfig(
            target="http",
            base_url=server.url,
            database_url=url,
            reset=False,
            sale_id=made.flash_sale_id,
            shape=Open(rate=rate, max_inflight=256),
            duration_s=duration_s,
            request_timeout_s=5.0,
        )
        run = asyncio.create_task(run_load_async(load))
        await asyncio.sleep(duration_s)
        await holder.rollback()  # the blocked order goes through; the run ends
        result = await run
        sampler.cancel()
    return result.summary, samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=seconds, default=60.0, help="seconds of overload (default 60s)")
    parser.add_argument("--rate", type=float, default=1500.0, help="requests a second (default 1500)")
    parser.add_argument("--max-growth", type=float, default=10.0, help="the bar, in MB (default 10)")
    args = parser.parse_args()

    url = ready_url()
    with tempfile.TemporaryDirectory() as logs:
        server = ServerProcess(
            pool_size=1,
            pool_timeout=0.3,
            max_waiting=8,
            access_log=False,
            log_path=Path(logs) / "serve.log",
            env={config.DATABASE_URL_ENV: url},
        )
        with server:
            summary, samples = aio.run(overload(url, server, duration_s=args.duration, rate=args.rate))

    settled = [rss for t, rss in samples if t >= args.duration / 10]
    growth_mb = (settled[-1] - settled[0]) / 2**20 if len(settled) > 1 else 0.0
    result = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "rate": args.rate,
        "requests": summary["requests"],
        "outcomes": summary["outcomes"],
        "latency_ms": summary["latency_ms"],
        "rss_mb": {
            "first": samples[0][1] / 2**20,
            "median": statistics.median(rss for _, rss in samples) / 2**20,
            "max": max(rss for _, rss in samples) / 2**20,
            "last": samples[-1][1] / 2**20,
        },
        "growth_mb": growth_mb,
        "max_growth_mb": args.max_growth,
        "ok": growth_mb < args.max_growth,
        "rss_timeline": [(round(t, 1), round(rss / 2**20, 2)) for t, rss in samples],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "overload_memory.json"
    path.write_text(json.dumps(result, indent=2))
    rss = result["rss_mb"]
    print(
        f"{summary['requests']:,} requests in {args.duration:g} s ({summary['rps']:,.0f}/s): {summary['outcomes']}\n"
        f"service RSS: first {rss['first']:.1f} MB, median {rss['median']:.1f} MB, max {rss['max']:.1f} MB, "
        f"last {rss['last']:.1f} MB; growth after the first tenth {growth_mb:+.2f} MB "
        f"({'ok' if result['ok'] else 'OVER'} the {args.max_growth:g} MB bar)\nsaved to {path}"
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
