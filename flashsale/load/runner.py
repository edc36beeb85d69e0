"""One load run from start to finish: a fresh scenario, the target, the workload with the lock sampler and a
progress bar alongside, then the audit and the summary.

    from flashsale.load import LoadConfig, run_load

    result = run_load(LoadConfig(target="db", strategy="pessimistic", vus=32, think_ms=0, duration_s=10))
    result.summary["rps"], result.summary["latency_ms"]["p95"], result.ok
    result.records          # one row a request
    result.lock_timeline    # pg_stat_activity samples
    result.summary_frame()  # the summary as one row
    result.to_parquet("data/runs/pessimistic-32.parquet")

    # a database restart 5 s in: errors by class, the outage, the recovery, and every acknowledged order audited
    result = run_load(LoadConfig(target="http", duration_s=10, faults=("db-restart@5s",)))
    result.summary["meta"]["faults"][0]["recovery_s"], result.summary["audit"]["acknowledged_missing"]
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import platform
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import psutil

from flashsale import aio, strategies
from flashsale.audit import Audit, audit_sale
from flashsale.db import connection, migrate
from flashsale.db.guard import DatabaseGuard
from flashsale.load import summary as summaries
from flashsale.load.contention import LockSampler, mean_row_lock_waiters
from flashsale.load.faults import Fault, FaultInjector, embedded_pgdata, fault_report, outage_mask
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.retries import KeyedRetries
from flashsale.load.sale import Sale, prepare_sale
from flashsale.load.service import ServiceProcess
from flashsale.load.targets import DbTarget, HttpTarget
from flashsale.load.workloads import LATE_AFTER_S, Closed, Open, WorkloadStats, run_closed, run_open
from flashsale.repositories import users as users_repo

TARGETS = ("db", "http")
ENGINES = ("native", "locust")  # native: flashsale's own workers; locust: Locust's distributed mode (http target)
OPEN_MODEL_POOL = 32  # default pool (db target) or service pool (http target) in the open model
DB_POOL_TIMEOUT_S = 30.0  # db target: how long an order may wait for a pooled connection
LOCKS_SUFFIX = ".locks.parquet"
SUMMARY_METADATA_KEY = b"flashsale.summary"


@dataclass(frozen=True)
class LoadConfig:
    """Everything a run depends on; the defaults are the seed's k6 test (10 VUs, 100 ms think, 100 users,
    50 units, one per user)."""

    target: str = "db"  # "db": the strategy in-process; "http": the order service
    strategy: str = strategies.DEFAULT_STRATEGY
    vus: int = 10  # closed model: virtual users
    think_ms: float = 100.0  # closed model: pause after each order
    rate: float | None = None  # orders/s; setting it selects the open model
    max_inflight: int = 1000  # open model: starts beyond this many requests in flight are dropped
    duration_s: float = 30.0  # measured time, after the warmup
    warmup_s: float = 0.0  # run first, excluded from the figures
    users: int = 100
    inventory: int = 50
    per_user_limit: int = 1
    quantity: int = 1  # units per order
    shards: int | None = None  # passed to scenario.reset when it takes shards
    reset: bool = True  # a fresh scenario before the run; False: the newest sale (or `sale_id`) as it is
    sale_id: UUID | None = None
    seed: int = 0  # the random choice of users
    pool_size: int | None = None  # db target pool / started service pool; default vus (closed) or 32 (open)
    base_url: str | None = None  # http target: a running service; None starts one on a free loopback port
    database_url: str | None = None  # default: FLASHSALE_DATABASE_URL, else the embedded server
    sample_interval_s: float = 0.1  # pg_stat_activity sampling
    grace_s: float = 10.0  # how long requests in flight at the end may take to finish
    progress: bool = False  # a tqdm bar on stderr
    faults: tuple[str, ...] = ()  # e.g. ("db-restart@10s",) or ("db-stop@10s:3s",): see flashsale.load.faults
    request_timeout_s: float = 10.0  # http target: a request not answered by then is a `TimeoutError`
    pool_timeout_s: float | None = None  # wait for a pooled connection (db target 30 s; started service its default)
    idempotency_keys: bool = False  # every order carries an idempotency key (implied by retry_rate > 0)
    retry_rate: float = 0.0  # share of requests that resend one of the last `retry_pool` keys with the same body
    retry_pool: int = 50
    workers: int | None = None  # load-generating processes; None: `default_workers` for this machine and load
    engine: str = "native"  # "locust": Locust's master and `workers` Locust workers (http target only)
    service_workers: int = 1  # http target, started service: `flashsale serve --workers N`

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "locust" and self.target != "http":
            raise ValueError("the locust engine drives the http target only (add --target http)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.service_workers < 1:
            raise ValueError(f"service workers must be at least 1, got {self.service_workers}")
        if self.service_workers > 1 and (self.target != "http" or self.base_url is not None):
            raise ValueError("service workers are for the service this run starts (--target http, no --base-url)")
        if self.strategy not in strategies.names():
            raise strategies.UnknownStrategy(self.strategy)
        if self.base_url is not None and self.target != "http":
            raise ValueError("a base URL is only for the http target")
        if not self.duration_s > 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if self.warmup_s < 0 or self.grace_s < 0 or not self.sample_interval_s > 0:
            raise ValueError("warmup and grace must be 0 or more, the sample interval positive")
        if self.pool_size is not None and self.pool_size < 1:
            raise ValueError(f"pool size must be at least 1, got {self.pool_size}")
        if not self.request_timeout_s > 0 or (self.pool_timeout_s is not None and not self.pool_timeout_s > 0):
            raise ValueError("request and pool timeouts must be positive")
        KeyedRetries(rate=self.retry_rate, pool=self.retry_pool)  # validates both
        if isinstance(self.faults, str):
            object.__setattr__(self, "faults", (self.faults,))
        object.__setattr__(self, "faults", tuple(str(Fault.parse(f)) for f in self.faults))
        for fault in self.fault_list:
            if fault.at_s >= self.warmup_s + self.duration_s:
                raise ValueError(f"fault {fault} comes after the run's end ({self.warmup_s + self.duration_s:g} s)")
        self.workload  # noqa: B018 - validates vus, think time, rate and max in-flight

    @property
    def model(self) -> str:
        return "closed" if self.rate is None else "open"

    @property
    def workload(self) -> Closed | Open:
        if self.rate is None:
            return Closed(vus=self.vus, think_s=self.think_ms / 1000)
        return Open(rate=self.rate, max_inflight=self.max_inflight)

    @property
    def keyed(self) -> bool:
        return self.idempotency_keys or self.retry_rate > 0

    @property
    def fault_list(self) -> list[Fault]:
        return [Fault.parse(f) for f in self.faults]

    @property
    def effective_pool_size(self) -> int:
        if self.pool_size is not None:
            return self.pool_size
        return self.vus if self.rate is None else min(self.max_inflight, OPEN_MODEL_POOL)

    def replace(self, **changes: Any) -> LoadConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class LoadResult:
    """What a run produced: the summary (the `--json` document), every request, the lock timeline."""

    summary: dict[str, Any]
    records: pd.DataFrame
    lock_timeline: pd.DataFrame
    config: LoadConfig | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """The audit passed (nothing oversold, the inventory row agrees with the orders, no user over the limit)."""
        audit = self.summary.get("audit")
        return bool(audit and audit["ok"])

    def summary_frame(self) -> pd.DataFrame:
        return summaries.summary_frame(self.summary)

    def text(self) -> str:
        return summaries.render_text(self.summary)

    def to_parquet(self, path: str | Path) -> tuple[Path, Path]:
        """Write the records to `path` (the summary in the file's metadata) and the lock timeline next to it
        (`name.locks.parquet`); returns both paths."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.records, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), SUMMARY_METADATA_KEY: json.dumps(self.summary, default=str)}
        pq.write_table(table.replace_schema_metadata(metadata), path)
        locks = locks_path(path)
        self.lock_timeline.to_parquet(locks, index=False)
        return path, locks

    @classmethod
    def read_parquet(cls, path: str | Path) -> LoadResult:
        """A result saved by `to_parquet` (without its config)."""
        import pyarrow.parquet as pq

        path = Path(path)
        table = pq.read_table(path)
        summary = json.loads(table.schema.metadata[SUMMARY_METADATA_KEY])
        locks = locks_path(path)
        timeline = pd.read_parquet(locks) if locks.exists() else pd.DataFrame()
        return cls(summary=summary, records=table.to_pandas(), lock_timeline=timeline)


def locks_path(path: Path) -> Path:
    name = path.name.removesuffix(".parquet")
    return path.with_name(name + LOCKS_SUFFIX)


def run_load(config: LoadConfig | None = None, **changes: Any) -> LoadResult:
    """Run a load test and return its result; `changes` override fields of `config` (or of the defaults).

    Blocks until the run ends. Inside a running event loop (a Jupyter kernel) the run gets its own uvloop in a
    worker thread; from async code, `await run_load_async(config)` instead.
    """
    config = (config or LoadConfig()).replace(**changes) if changes else (config or LoadConfig())
    return aio.run_anywhere(run_load_async(config))


async def run_load_async(config: LoadConfig) -> LoadResult:
    """`run_load` for callers already in an event loop."""
    url = ready_url(config)
    pgdata = embedded_pgdata(url) if config.faults else None  # refuse before anything starts
    outcomes = Outcomes()
    records = RecordBuffer()
    retries = KeyedRetries(rate=config.retry_rate, pool=config.retry_pool, seed=config.seed) if config.keyed else None
    meta: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    conn = await connection.connect_async(url)
    async with conn:
        meta["postgres_version"] = (await (await conn.execute("SHOW server_version")).fetchone())[0]
        sale = await configured_sale(conn, config)

    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_quiet_reconnection_logs())
        if config.target == "db":
            target = await _db_target(config, url, sale, outcomes, stack, retries)
            meta["pinned_connections"] = target.pinned
            service = None
        else:
            target, service = await _http_target(config, url, sale, outcomes, stack, retries)
            meta.update(base_url=target.base_url, service_started=service is not None, users_fetched=target.users)
            meta["service_pid"] = service.pid if service else None

        origin = time.perf_counter_ns()
        sampler = LockSampler(url, interval_s=config.sample_interval_s, origin_ns=origin)
        await sampler.start()
        stack.push_async_callback(sampler.stop)
        if service is not None:
            service.mark_cpu()
        process = psutil.Process()
        cpu_before = sum(process.cpu_times()[:2])
        injector = FaultInjector(config.fault_list, pgdata, origin) if pgdata is not None else None
        faulting = asyncio.create_task(injector.run()) if injector is not None else None
        try:
            async with _progress(records, config, origin) if config.progress else contextlib.nullcontext():
                stats = await _run_workload(config, target, records, origin)
        finally:
            if injector is not None:
                await injector.finish(faulting)
        cpu_used = sum(process.cpu_times()[:2]) - cpu_before
        wall = (time.perf_counter_ns() - origin) / 1e9
        client_cpu = 100.0 * cpu_used / wall if wall > 0 else None
        if service is not None:
            meta["service_cpu_percent"] = service.cpu_percent()
        timeline = await sampler.stop()
        if sampler.error:
            meta["lock_sampler_error"] = sampler.error
        if sampler.failures:
            meta["lock_sampler_failures"] = sampler.failures
    # Strategies and the service are stopped now (queued orders flushed): the database holds the final state.
    conn = await connection.connect_async(url)
    async with conn:
        audit = await audit_sale(
            conn,
            sale.flash_sale_id,
            acknowledged=bytes(target.acknowledged),
            keys=retries.acknowledged() if retries is not None else None,
            key_disagreements=retries.disagreements if retries is not None else 0,
        )

    frame = records.to_frame(outcomes, warmup_s=config.warmup_s)
    if retries is not None:
        meta["idempotency"] = {
            "retry_rate": config.retry_rate,
            "retry_pool": config.retry_pool,
            "keys": retries.keys,
            "retries": retries.retries,
            "answers_disagreeing": retries.disagreements,
        }
    if injector is not None:
        meta["faults"] = fault_report(frame, injector.events)
        frame["in_outage"] = outage_mask(frame, meta["faults"])
    window_end = config.warmup_s + config.duration_s
    measured_timeline = timeline[(timeline["t_s"] >= config.warmup_s) & (timeline["t_s"] < window_end)]
    meta.update(_run_meta(config, sale, stats, audit, len(measured_timeline)))
    meta["strategy_counters"] = dict(target.strategy.counters) if config.target == "db" else None
    summary = summaries.summarize(
        frame,
        target=config.target,
        strategy=config.strategy,
        model=config.model,
        vus=config.vus if config.model == "closed" else None,
        rate=config.rate,
        think_ms=config.think_ms if config.model == "closed" else None,
        duration_s=config.duration_s,
        audit=audit.as_json(),
        lock_waiters_mean=mean_row_lock_waiters(timeline, start_s=config.warmup_s, end_s=window_end),
        client_cpu_percent=client_cpu,
        meta=meta,
    )
    return LoadResult(summary=summary, records=frame, lock_timeline=timeline, config=config)


async def _db_target(
    config: LoadConfig,
    url: str,
    sale: Sale,
    outcomes: Outcomes,
    stack: contextlib.AsyncExitStack,
    retries: KeyedRetries | None,
) -> DbTarget:
    """The strategy started on a pool of its own (stopped, then closed, by `stack`)."""
    conn = await connection.connect_async(url)
    async with conn:
        user_ids = await users_repo.list_ids(conn, limit=sale.users)
    strategy = strategies.get_strategy(config.strategy)
    faults = bool(config.faults)
    guard = DatabaseGuard(url)
    pool = connection.make_pool(
        url,
        size=config.effective_pool_size,
        timeout=config.pool_timeout_s or DB_POOL_TIMEOUT_S,
        name="flashsale-load",
        # Under faults, as the service does: replace connections broken by a restart before use, and give a lost
        # slot up quickly so that the guard's probe refills the pool as soon as the database is back.
        check=faults,
        reconnect_timeout=0.5 if faults else 300.0,
        guard=guard,
    )
    await stack.enter_async_context(pool)
    stack.push_async_callback(guard.stop)
    await strategy.start(pool)
    stack.push_async_callback(strategy.stop)
    return DbTarget(
        strategy,
        pool,
        sale.flash_sale_id,
        user_ids,
        outcomes=outcomes,
        quantity=config.quantity,
        pin_connections=config.model == "closed" and config.effective_pool_size >= config.vus,
        guard=guard,
        retries=retries,
    )


async def _http_target(
    config: LoadConfig,
    url: str,
    sale: Sale,
    outcomes: Outcomes,
    stack: contextlib.AsyncExitStack,
    retries: KeyedRetries | None,
) -> tuple[HttpTarget, ServiceProcess | None]:
    """The service at `config.base_url`, or one started here (stopped by `stack`), with its users fetched."""
    service = None
    base_url = config.base_url
    if base_url is None:
        service = ServiceProcess(
            strategy=config.strategy,
            pool_size=config.effective_pool_size,
            pool_timeout_s=config.pool_timeout_s,
            database_url=url,
        )
        stack.push_async_callback(service.stop)
        base_url = await service.start()
    connections = config.vus if config.model == "closed" else config.max_inflight
    target = HttpTarget(
        base_url,
        sale.flash_sale_id,
        outcomes=outcomes,
        quantity=config.quantity,
        connections=connections,
        timeout_s=config.request_timeout_s,
        retries=retries,
    )
    stack.push_async_callback(target.close)
    await target.open()
    return target, service


async def configured_sale(conn, config: LoadConfig) -> Sale:
    """The sale `config` describes: a fresh scenario, or (`reset=False`) the one already there."""
    return await prepare_sale(
        conn,
        reset=config.reset,
        users=config.users,
        inventory=config.inventory,
        per_user_limit=config.per_user_limit,
        shards=config.shards,
        sale_id=config.sale_id,
    )


def ready_url(config: LoadConfig) -> str:
    """The database of `config` (FLASHSALE_DATABASE_URL or the embedded server), migrated."""
    return _ready(config.database_url or connection.database_url())


@contextlib.contextmanager
def _quiet_reconnection_logs():
    """The pool and the guard log every failed reconnection as a warning; the run's summary reports the outage,
    so keep those lines off the terminal (and out of notebook outputs) while it goes."""
    loggers = [logging.getLogger(name) for name in ("psycopg", "psycopg.pool", "flashsale.db")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _ready(url: str) -> str:
    """`url`, migrated (the migrations are idempotent)."""
    with connection.connect(url) as conn:
        migrate.migrate(conn)
    return url


async def _run_workload(config: LoadConfig, target, records: RecordBuffer, origin: int) -> WorkloadStats:
    total_s = config.warmup_s + config.duration_s
    common = {"users": target.users, "duration_s": total_s, "seed": config.seed, "grace_s": config.grace_s}
    if config.model == "closed":
        return await run_closed(config.workload, target.session, records, origin_ns=origin, **common)
    return await run_open(config.workload, target.order, records, origin_ns=origin, **common)


def _run_meta(config: LoadConfig, sale: Sale, stats: WorkloadStats, audit: Audit, lock_samples: int) -> dict:
    meta = {
        "seed": config.seed,
        "users": sale.users,
        "inventory": sale.inventory,
        "per_user_limit": sale.per_user_limit,
        "quantity": config.quantity,
        "flash_sale_id": str(sale.flash_sale_id),
        "reset": config.reset,
        "shards": config.shards,
        "pool_size": config.effective_pool_size if config.target == "db" or config.base_url is None else None,
        "warmup_s": config.warmup_s,
        "started": stats.started,
        "interrupted": stats.interrupted,
        "elapsed_s": stats.elapsed_s,
        "lock_samples": lock_samples,
        "lock_sample_interval_s": config.sample_interval_s,
        "request_timeout_s": config.request_timeout_s if config.target == "http" else None,
        "audit_details": {
            "confirmed_quantity": audit.confirmed_quantity,
            "inventory_mismatch": audit.inventory_mismatch,
            "duplicate_acknowledgements": audit.duplicate_acknowledgements,
        },
        "audit_problems": audit.problems(),
        "python": platform.python_version(),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }
    if config.model == "open":
        meta.update(
            max_inflight=config.max_inflight,
            late_starts=stats.late_starts,
            dropped_starts=stats.dropped_starts,
            late_after_ms=LATE_AFTER_S * 1000,
        )
    return meta


@contextlib.asynccontextmanager
async def _progress(records: RecordBuffer, config: LoadConfig, origin: int) -> AsyncIterator[None]:
    """A tqdm bar over the run's seconds, with the live request rate."""
    from tqdm import tqdm

    total = config.warmup_s + config.duration_s
    bar = tqdm(
        total=total,
        unit="s",
        file=sys.stderr,
        leave=False,
        bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s{postfix}",
        desc=f"{config.target} {config.strategy}",
    )

    async def update() -> None:
        last_n, last_t = 0, origin
        while True:
            await asyncio.sleep(0.5)
            now, n = time.perf_counter_ns(), len(records)
            rate = (n - last_n) / ((now - last_t) / 1e9)
            last_n, last_t = n, now
            bar.n = min(total, (now - origin) / 1e9)
            bar.set_postfix_str(f"{n} requests, {rate:.0f}/s", refresh=True)

    task = asyncio.create_task(update())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bar.close()
