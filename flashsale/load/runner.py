"""One load run from start to finish: a fresh scenario, the target, the workload with the lock sampler and a
progress bar alongside, then the audit and the summary.

    from flashsale.load import Closed, LoadConfig, run_load

    result = run_load(LoadConfig(strategy="pessimistic", shape=Closed(vus=32, think_ms=0), duration_s=10))
    result.summary["rps"], result.summary["latency_ms"]["p95"], result.ok
    result.records          # one row a request (and the load worker that made it)
    result.lock_timeline    # pg_stat_activity samples
    result.summary_frame()  # the summary as one row
    result.to_parquet("data/runs/pessimistic-32.parquet")

    # a database restart 5 s in: errors by class, the outage, the recovery, and every acknowledged order audited
    result = run_load(LoadConfig(target="http", duration_s=10, faults=("db-restart@5s",)))
    result.summary["meta"]["faults"][0]["recovery_s"], result.summary["audit"]["acknowledged_missing"]

    # Redis killed 5 s in and back empty 2 s later: the stock gate rebuilt, and audited against the database
    result = run_load(LoadConfig(strategy="redis_gate", duration_s=10, faults=("redis-kill@5s:2s",)))
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from flashsale import aio, contract, placement, stock_gate, strategies
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.kv import connection as kv_connection
from flashsale.load import placing
from flashsale.load import records as records_io
from flashsale.load import summary as summaries
from flashsale.load.config import LoadConfig
from flashsale.load.contention import LockSampler, mean_row_lock_waiters
from flashsale.load.faults import (
    FaultedServers,
    FaultEvent,
    FaultInjector,
    embedded_pgdata,
    embedded_valkey_dir,
    fault_report,
    outage_mask,
)
from flashsale.load.http_client import HttpClient
from flashsale.load.measured_server import MeasuredServer
from flashsale.load.merge import Merged, WorkerResult, merge
from flashsale.load.outcomes import Outcomes
from flashsale.load.sale import Sale, configured_sale
from flashsale.load.transactions import TransactionCounter, per_request
from flashsale.load.workers import LoadGenerators, LocalWorkers, ProcessWorkers
from flashsale.load.workers import plans as worker_plans
from flashsale.load.workloads import LATE_AFTER_S, WorkloadStats
from flashsale.repositories import flash_sales
from flashsale.repositories.pending import fetch_one
from flashsale.services.audit import Audit, audit_sale

__all__ = ["LoadConfig", "LoadResult", "run_load", "run_load_async"]

SALE_WINDOW = timedelta(hours=1)  # a sale opened during a run stays open this long


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
        return records_io.write_run(Path(path), self.records, self.lock_timeline, self.summary)

    @classmethod
    def read_parquet(cls, path: str | Path) -> LoadResult:
        """A result saved by `to_parquet` (without its config)."""
        records, timeline, summary = records_io.read_run(Path(path))
        return cls(summary=summary, records=records, lock_timeline=timeline)


def run_load(config: LoadConfig | None = None, **changes: Any) -> LoadResult:
    """Run a load test and return its result; `changes` override fields of `config` (or of the defaults).

    Blocks until the run ends. Inside a running event loop (a Jupyter kernel) the run gets its own uvloop in a
    worker thread; from async code, `await run_load_async(config)` instead.
    """
    config = (config or LoadConfig()).replace(**changes) if changes else (config or LoadConfig())
    return aio.run_anywhere(run_load_async(config))


async def run_load_async(config: LoadConfig) -> LoadResult:
    """`run_load` for callers already in an event loop: the run's phases, each returning what the next needs."""
    url = ready_url(config.database_url)
    owned = placing.embedded_or_none(url)  # the embedded server's data directory, None for another server
    faulted = await _faulted_servers(config, url, owned)  # refuse before anything starts
    with placing.database_placed(url, config.db_cpus, owned):  # so is placing another server
        prepared = await _prepare(config, url)
        counter = TransactionCounter(url)
        await counter.begin()
        measured = await _measure(config, url, prepared.sale, faulted, owned, counter)
        transactions = await counter.count()
    # Workers, strategies and the service are stopped now (queued orders flushed): the database holds the final state.
    outcomes = Outcomes()
    merged = merge(measured.results, outcomes)
    audit = await _audit(config, url, prepared.sale, merged)
    frame = merged.records.to_frame(outcomes, warmup_s=config.warmup_s)
    frame["worker"] = merged.worker
    faults = fault_report(frame, measured.fault_events) if measured.fault_events is not None else None
    if faults is not None:
        frame["in_outage"] = outage_mask(frame, faults)
    window_end = config.warmup_s + config.duration_s
    timeline = measured.timeline
    measured_timeline = timeline[(timeline["t_s"] >= config.warmup_s) & (timeline["t_s"] < window_end)]
    meta = {
        **prepared.meta(),
        **measured.meta(),
        **_merged_meta(config, merged, outcomes),
        "pg_transactions": per_request(transactions, len(frame)),
        **({"faults": faults} if faults is not None else {}),
        **_run_meta(config, prepared.sale, merged.stats, audit, len(measured_timeline), frame),
        **_strategy_meta(config, merged.strategy_counters),
    }
    cpu = merged.cpu_percent
    shape = config.shape.params()
    summary = summaries.summarize(
        frame,
        target=config.target,
        strategy=config.strategy,
        model=config.model,
        vus=shape.get("vus"),
        rate=shape.get("rate"),
        think_ms=shape.get("think_ms"),
        duration_s=config.duration_s,
        audit=audit.as_json(),
        lock_waiters_mean=mean_row_lock_waiters(timeline, start_s=config.warmup_s, end_s=window_end),
        client_cpu_percent=None if any(c is None for c in cpu) else sum(c for c in cpu if c is not None),
        client_cpu_percent_by_worker=cpu,
        workers=len(measured.results),
        engine=config.engine,
        meta=meta,
    )
    return LoadResult(summary=summary, records=frame, lock_timeline=timeline, config=config)


@dataclass(frozen=True)
class _Prepared:
    """Before the run: the sale it orders from, and what the database is."""

    sale: Sale
    started_at: str
    postgres_version: str
    load_average: tuple[float, float, float]  # the machine's, before the run: was it quiet?

    def meta(self) -> dict[str, Any]:
        one, five, fifteen = self.load_average
        return {
            "started_at": self.started_at,
            "postgres_version": self.postgres_version,
            "load_average_before": {"1m": one, "5m": five, "15m": fifteen},
        }


async def _prepare(config: LoadConfig, url: str) -> _Prepared:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_average = os.getloadavg()
    conn = await connection.connect_async(url)
    async with conn:
        version = (await fetch_one(await conn.execute("SHOW server_version")))[0]
        sale = await configured_sale(conn, config)
    return _Prepared(sale=sale, started_at=started_at, postgres_version=version, load_average=load_average)


@dataclass(frozen=True)
class _Measured:
    """What the run itself gave: every load worker's result, the lock timeline, the faults injected, and what was
    seen of the target, the service and the sampler while it went."""

    results: list[WorkerResult]
    timeline: pd.DataFrame
    fault_events: list[FaultEvent] | None
    target: dict[str, Any]
    sale_opens_at: str | None = None
    service_cpu_percent: float | None = None
    engine: str = "native"
    locust_stats: dict | None = None  # Locust's own (bucketed) figures, under the Locust engine
    sampler_error: str | None = None
    sampler_failures: int = 0
    placement: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        meta = {**self.target, "placement": self.placement}
        if self.sale_opens_at is not None:
            meta["sale_opens_at"] = self.sale_opens_at
        if self.target.get("service_started"):
            meta["service_cpu_percent"] = self.service_cpu_percent
        if self.engine == "locust":
            meta["locust_stats"] = self.locust_stats
        if self.sampler_error:
            meta["lock_sampler_error"] = self.sampler_error
        if self.sampler_failures:
            meta["lock_sampler_failures"] = self.sampler_failures
        return meta


async def _faulted_servers(config: LoadConfig, url: str, owned: Path | None) -> FaultedServers | None:
    """The embedded servers the run's faults stop (None without faults); `FaultUnsupported` for a server the
    project does not own. `owned` is the database's data directory if it is the embedded one."""
    if not config.faults:
        return None
    servers = {fault.server for fault in config.fault_list}
    return FaultedServers(
        pgdata=(owned or embedded_pgdata(url)) if "database" in servers else None,
        valkey_dir=await embedded_valkey_dir(kv_connection.redis_url()) if "Redis" in servers else None,
    )


async def _measure(
    config: LoadConfig,
    url: str,
    sale: Sale,
    faulted: FaultedServers | None,
    owned: Path | None,
    counter: TransactionCounter,
) -> _Measured:
    """Start the service (for the http target without a base URL) on its CPUs, then, on the client's CPUs, the load
    workers and the lock sampler; run the workload from one origin with the faults injected on time (on `faulted`,
    None without faults), and stop them all. `owned` is the embedded server's data directory (None for another
    server): where the database ran is read from its postmaster. `counter` is marked as the workload starts."""
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_quiet_reconnection_logs())
        service, base_url = await _service(config, url, stack) if config.target == "http" else (None, None)
        stack.enter_context(placement.pinned_here(config.client_cpus))  # what starts from here on is the client
        workers = await _workers(config, url, sale, base_url, stack)
        ran_on = placing.actual(owned, service_pid=service.pid if service else None, service_started=bool(service))
        origin = time.perf_counter_ns() + round(workers.lead_s() * 1e9)
        opens_at = (
            await _open_sale_at(url, sale, origin, config.sale_opens_s) if config.sale_opens_s is not None else None
        )
        sampler = LockSampler(
            url, interval_s=config.sample_interval_s, origin_ns=origin, probe=_probe(config, base_url, stack)
        )
        await sampler.start()
        stack.push_async_callback(sampler.stop)
        if service is not None:
            service.mark_cpu()
        await counter.mark()
        injector = FaultInjector(config.fault_list, faulted, origin) if faulted is not None else None
        faulting = asyncio.create_task(injector.run()) if injector is not None else None
        try:
            progress = _progress(workers.requests, config, origin) if config.progress else contextlib.nullcontext()
            async with progress:
                results = await workers.run(origin)
        finally:
            if injector is not None and faulting is not None:
                await injector.finish(faulting)
        return _Measured(
            results=results,
            timeline=await sampler.stop(),
            fault_events=injector.events if injector is not None else None,
            target=_target_meta(config, workers, service, base_url),
            sale_opens_at=opens_at,
            service_cpu_percent=service.cpu_percent() if service is not None else None,
            engine=config.engine,
            locust_stats=getattr(workers, "locust_stats", None),
            sampler_error=sampler.error,
            sampler_failures=sampler.failures,
            placement={"configured": asdict(config.placement), "ran_on": ran_on},
        )


def _probe(config: LoadConfig, base_url: str | None, stack: contextlib.AsyncExitStack) -> Callable | None:
    """The service's order queue depth, sampled beside the locks when the service has a queue."""
    if base_url is None or not config.service.queue_size:
        return None
    metrics = HttpClient(base_url, timeout_s=1.0)
    stack.push_async_callback(metrics.close)
    return functools.partial(_queue_depth, metrics, metrics.prepare("GET", contract.METRICS_PATH))


async def _audit(config: LoadConfig, url: str, sale: Sale, merged: Merged) -> Audit:
    """The sale audited against every answer the workers were given (acknowledged orders, keys, accepted ids), and
    against its stock gate when the strategy keeps one (`redis_gate`)."""
    gate = None
    if strategies.STRATEGIES[config.strategy].needs_redis:
        gate = await stock_gate.read_view(sale.flash_sale_id)
    conn = await connection.connect_async(url)
    async with conn:
        return await audit_sale(
            conn,
            sale.flash_sale_id,
            acknowledged=bytes(merged.acknowledged),
            keys=merged.acknowledged_keys if config.keyed else None,
            key_disagreements=merged.disagreements,
            accepted=merged.accepted_ids or None,
            gate=gate,
        )


def _merged_meta(config: LoadConfig, merged: Merged, outcomes: Outcomes) -> dict[str, Any]:
    """Idempotency keys and asynchronous orders, as the merged workers saw them."""
    meta: dict[str, Any] = {}
    if config.keyed:
        meta["idempotency"] = {
            "retry_rate": config.retry_rate,
            "retry_pool": config.retry_pool,
            "keys": merged.keys,
            "retries": merged.retries,
            "answers_disagreeing": merged.disagreements,
        }
    if merged.accepted_ids or len(merged.settlements):
        meta["async"] = _settlement_report(config, merged, outcomes, len(set(merged.accepted_ids)))
    return meta


def _strategy_meta(config: LoadConfig, counters: dict[str, int] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"strategy_counters": counters if config.target == "db" else None}
    if lock_hold := _lock_hold_ms(counters):
        meta["lock_hold_ms"] = lock_hold
    return meta


async def _service(config: LoadConfig, url: str, stack: contextlib.AsyncExitStack) -> tuple[MeasuredServer | None, str]:
    """The service at `config.base_url`, or one started here on a free port (stopped by `stack`)."""
    if config.base_url is not None:
        return None, config.base_url.rstrip("/")
    service = MeasuredServer(config.started_service, database_url=url, cpus=config.placement.service_cpus)
    stack.push_async_callback(service.stop)
    return service, await service.start()


async def _workers(
    config: LoadConfig, url: str, sale: Sale, base_url: str | None, stack: contextlib.AsyncExitStack
) -> LoadGenerators:
    """The load generators, started and ready (stopped by `stack`): flashsale's own workers, in this event loop
    (one) or in processes of their own (more), or Locust's."""
    workers: LoadGenerators
    if config.engine == "locust":
        from flashsale.load.locust.engine import LocustEngine

        assert base_url is not None, "the locust engine drives the http target"
        engine = LocustEngine(config, base_url=base_url, flash_sale_id=sale.flash_sale_id, workers=config.worker_count)
        stack.push_async_callback(engine.stop)
        await engine.start()
        return engine
    plans = worker_plans(config, url, sale, base_url=base_url)
    if len(plans) == 1:
        workers = LocalWorkers(plans[0], stack)
    else:
        processes = ProcessWorkers(plans)
        stack.push_async_callback(processes.stop)
        workers = processes
    await workers.start()
    return workers


async def _open_sale_at(url: str, sale: Sale, origin_ns: int, opens_s: float) -> str:
    """Move the sale's window so that it opens `opens_s` after the run's origin (for an hour); its wall-clock time."""
    opens_at = datetime.now(UTC) + timedelta(seconds=(origin_ns - time.perf_counter_ns()) / 1e9 + opens_s)
    conn = await connection.connect_async(url)
    async with conn:
        await flash_sales.set_window(conn, sale.flash_sale_id, opens_at, opens_at + SALE_WINDOW)
    return opens_at.isoformat()


QUEUE_DEPTH_METRIC = "flashsale_order_queue_depth"


async def _queue_depth(client: HttpClient, request: bytes) -> float | None:
    """The service's order queue depth from its `/metrics` (summed over its processes' series)."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = await client.send(request)
    if answer.status != 200:
        return None
    for family in text_string_to_metric_families(answer.body.decode()):
        if family.name == QUEUE_DEPTH_METRIC:
            return sum(sample.value for sample in family.samples)
    return None


def _target_meta(config: LoadConfig, workers, service: MeasuredServer | None, base_url: str | None) -> dict:
    if config.target == "db":
        return {"pinned_connections": workers.pinned}
    return {
        "base_url": base_url,
        "service_started": service is not None,
        "users_fetched": getattr(workers, "user_count", None),  # Locust's workers read them on their own
        "service_pid": service.pid if service else None,
        "service_workers": config.service.workers if service else None,
    }


def _settlement_report(config: LoadConfig, merged: Merged, outcomes: Outcomes, accepted: int) -> dict:
    """Asynchronous orders: how the accepted ones ended, and the time from sending each to seeing it settled
    (its acceptance latency is the summary's `by_outcome.accepted`)."""
    settled = merged.settlements.to_frame(outcomes, warmup_s=config.warmup_s)
    measured = settled[~settled["warmup"]]
    counts = measured["outcome"].astype(str).value_counts()
    return {
        "accepted": accepted,
        "followed": len(measured),
        "settled": {str(name): int(count) for name, count in counts.items()},
        "time_to_terminal_ms": summaries.latency_stats(measured["latency_ms"].to_numpy()),
        "polls": merged.polls,
        "poll_interval_s": config.poll_interval_s,
        "poll_max_s": config.poll_max_s,
    }


def _lock_hold_ms(counters: dict[str, int] | None) -> float | None:
    """The mean time a strategy held the row lock across a client round trip, in ms (strategies that do count it)."""
    if not counters or not counters.get("lock_holds"):
        return None
    return counters["lock_hold_ns"] / counters["lock_holds"] / 1e6


@contextlib.contextmanager
def _quiet_reconnection_logs():
    """The pool and the guard log every failed reconnection as a warning, the stock gate a Redis lost and back; the
    run's summary reports the outage, so keep those lines off the terminal (and out of notebook outputs) while it
    goes."""
    names = ("psycopg", "psycopg.pool", "flashsale.db", "flashsale.strategies.redis_gate")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run_meta(
    config: LoadConfig, sale: Sale, stats: WorkloadStats, audit: Audit, lock_samples: int, frame: pd.DataFrame
) -> dict:
    shape = config.shape.params()
    meta: dict[str, Any] = {
        "seed": config.seed,
        "think_jitter": shape.get("think_jitter"),
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
    if config.target == "http":
        meta["retry_after"] = _retry_after_meta(config, stats, frame)
    if config.model == "open":
        # the open shape's parameters but the rate (the summary's own): stages, spike, max_inflight, ...
        meta.update({"stages": None, "spike": None, **{k: _listed(v) for k, v in shape.items() if k != "rate"}})
        meta.update(
            late_starts=stats.late_starts,
            # how long after its scheduled start each measured request was sent (all of it is in its latency)
            send_lag_ms=summaries.latency_stats(frame.loc[~frame["warmup"], "send_lag_ms"].to_numpy()),
            dropped_starts=stats.dropped_starts,
            late_after_ms=LATE_AFTER_S * 1000,
        )
    return meta


def _retry_after_meta(config: LoadConfig, stats: WorkloadStats, frame: pd.DataFrame) -> dict[str, Any]:
    """The refusals for now (the 429s and 503s, which carry `Retry-After`) in the measured window, a second; and,
    when the virtual users honour the hint, how many pauses it made longer than the think time and their total
    (over the whole run, warmup included)."""
    measured = frame.loc[~frame["warmup"], "outcome"].astype(str)
    refusals = int(measured.isin(contract.SERVICE_REFUSALS).sum())
    return {
        "honoured": config.honour_retry_after,
        "max_s": config.retry_after_max_s,
        "service_refusals": refusals,
        "service_refusals_per_s": refusals / config.duration_s,
        "waits": stats.retry_after_waits,
        "waited_s": stats.retry_after_wait_s,
    }


def _listed(value: Any) -> Any:
    """Tuples as the lists JSON makes of them: ((0.0, 0.0), (2.0, 100.0)) -> [[0.0, 0.0], [2.0, 100.0]]."""
    return [_listed(v) for v in value] if isinstance(value, tuple) else value


@contextlib.asynccontextmanager
async def _progress(requests: Callable[[], int], config: LoadConfig, origin: int) -> AsyncIterator[None]:
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
        last_n, last_t = 0, max(origin, time.perf_counter_ns())
        while True:
            await asyncio.sleep(0.5)
            now, n = time.perf_counter_ns(), requests()
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
