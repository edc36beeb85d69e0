"""Where the client's CPU per order goes, step by step, against pgbench's for the same statements.

For `atomic` (one pipelined round trip: BEGIN, the buyer's advisory lock, the take-stock statement, COMMIT) at
`--clients` connections, with the database on the first CPUs and the client on the last (`--placement split`),
each step adds one layer and reports its client CPU per order (user + system, microseconds) and orders/s:

1. `psycopg, plain`: one `conn.execute` of the take-stock statement a round trip, no transaction: psycopg's
   floor for one statement;
2. `psycopg pipeline`: the driver's exact transaction through psycopg's own `conn.pipeline()` (BEGIN, the lock, the
   statement and COMMIT with `conn.execute`; how the strategies sent it before `flashsale.db.pipeline`);
3. `flashsale pipeline`: the same transaction through `pipelined_transaction` (`flashsale.db.pipeline`: psycopg's
   libpq binding, prepared statements of its own), the statements written out here (no domain objects);
4. `strategy`: `Atomic.create_order` in a loop (the rows read into domain objects, refusals explained);
5. `load runner`: `flashsale load --target db` (virtual users, records, the lock sampler, one process);
6. `pgbench`: the strategy's reference script (`--variant driver`: the same pipeline) with as many clients.

Every step orders from a sale that never sells out, on the embedded server as `flashsale db up` leaves it (it
EMPTIES its tables). Writes data/benchmarks/driver_floor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

from flashsale import aio, config, placement
from flashsale.db import connection, migrate
from flashsale.domain import PlaceOrder, utc_now
from flashsale.load import Closed, LoadConfig, run_load
from flashsale.load.placing import database_placed
from flashsale.load.reference import run_reference
from flashsale.load.summary import cpu_us_per_order
from flashsale.placement import Placement
from flashsale.repositories import locks, placements
from flashsale.services import scenario
from flashsale.strategies.atomic import Atomic
from flashsale.strategies.pipelined import pipelined_transaction
from flashsale.units import seconds

SALE = {"users": 1000, "inventory": 100_000_000, "per_user_limit": 1_000_000}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _loop(url: str, clients: int, duration_s: float, step: str) -> tuple[float, float]:
    """(orders/s, client CPU us per order) of `step` run by `clients` connections for `duration_s`."""
    async with await connection.connect_async(url) as conn:
        made = await scenario.reset(conn, **SALE)
        users = [row[0] for row in await (await conn.execute("SELECT id FROM users")).fetchall()]
    conns = [await connection.connect_async(url) for _ in range(clients)]
    strategy = Atomic()
    done = 0

    async def client(conn) -> None:
        nonlocal done
        pick = random.Random(id(conn)).choice
        while time.perf_counter() < stop:
            command = PlaceOrder(user_id=pick(users), flash_sale_id=made.flash_sale_id)
            params = {"sale": command.flash_sale_id, "user": command.user_id, "quantity": 1, "key": None}
            if step == "psycopg, plain":
                await conn.execute(placements._TAKE_STOCK, {**params, "now": utc_now()})
            elif step == "psycopg pipeline":
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    await conn.execute(locks._LOCK_BUYER, [command.flash_sale_id, command.user_id])
                    await conn.execute(placements._TAKE_STOCK, {**params, "now": utc_now()})
                    await conn.execute("COMMIT")
            elif step == "flashsale pipeline":
                async with pipelined_transaction(conn) as tx:
                    await tx.execute(locks._LOCK_BUYER, [command.flash_sale_id, command.user_id])
                    await tx.execute(placements._TAKE_STOCK, {**params, "now": utc_now()})
            else:
                await strategy.create_order(conn, command)
            done += 1

    stop = time.perf_counter() + duration_s
    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    cpu, elapsed = _cpu() - cpu, time.perf_counter() - started
    for c in conns:
        await c.close()
    return done / elapsed, cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=seconds, default=5.0)
    parser.add_argument("--placement", default="split", choices=placement.NAMED)
    parser.add_argument("--out", default=str(config.DATA_DIR / "benchmarks" / "driver_floor.json"))
    args = parser.parse_args()

    url = connection.database_url()
    with connection.connect(url) as conn:
        migrate.migrate(conn)
    where = Placement.named(args.placement)
    rows = []
    print(f"atomic, {args.clients} clients, {args.duration:g} s; database on {where.db}, client on {where.client}")
    print(f"{'step':<22} {'orders/s':>9} {'client CPU us/order':>20}")
    with database_placed(url, where.db), placement.pinned_here(where.client):
        for step in ("psycopg, plain", "psycopg pipeline", "flashsale pipeline", "strategy"):
            rate, cpu_us = aio.run(_loop(url, args.clients, args.duration, step))  # uvloop, as the runner
            rows.append({"step": step, "orders_per_s": rate, "cpu_us_per_order": cpu_us})
            print(f"{step:<22} {rate:>9,.0f} {cpu_us:>20.1f}", flush=True)
    load = LoadConfig(
        target="db", strategy="atomic", shape=Closed(vus=args.clients, think_ms=0), duration_s=args.duration,
        warmup_s=0.5, db_cpus=where.db, client_cpus=where.client, **SALE,
    )  # fmt: skip
    summary = run_load(load).summary
    cpu_us = cpu_us_per_order(summary["client_cpu_percent"], summary["orders_per_s"]) or float("nan")
    rows.append({"step": "load runner", "orders_per_s": summary["orders_per_s"], "cpu_us_per_order": cpu_us})
    print(f"{'load runner':<22} {summary['orders_per_s']:>9,.0f} {cpu_us:>20.1f}", flush=True)
    reference = run_reference(load)
    cpu_us = cpu_us_per_order(reference.pgbench.client_cpu_percent, reference.orders_per_s) or float("nan")
    rows.append({"step": "pgbench", "orders_per_s": reference.orders_per_s, "cpu_us_per_order": cpu_us})
    print(f"{'pgbench':<22} {reference.orders_per_s:>9,.0f} {cpu_us:>20.1f}\n")
    for row in rows[1:3]:
        floor = row["cpu_us_per_order"] / cpu_us
        print(f"{row['step']}: the transaction alone costs {floor:.1f}x pgbench's CPU per order.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    measured = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "load_average": os.getloadavg()}
    out.write_text(json.dumps({**measured, "clients": args.clients, "rows": rows}, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
