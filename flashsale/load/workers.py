"""Load generation on every core: a run's virtual users (or its arrival schedule) split over worker processes.

One Python event loop runs one callback at a time: with many virtual users in it, a user whose transaction holds the
row lock waits for its turn behind the other users' work before it sends its next statement, and a fast strategy
finds the loop's core full before the database is. So `flashsale load --workers N` starts N processes (spawned, not
forked: the parent may be a Jupyter kernel with threads), each with its own event loop, connections, target and
strategy instance. Each gets a `WorkerPlan`:

- closed model: virtual users v = k, k + N, k + 2N, ... (each keeps the random stream of its number, so a seed
  makes the same choices over any number of workers);
- open model: every N-th scheduled start from the k-th, so that the N schedules together are the run's schedule;
- a share of the pool (db target), and idempotency keys with a prefix of its own.

The parent waits until every worker is ready (connections open, users read), then gives all of them one origin a
little in the future; every worker measures from it (`perf_counter_ns` is CLOCK_MONOTONIC, one clock for every
process on the machine) and sends back a `WorkerResult`, which `merge` puts together exactly.

With one worker the same `Worker` runs in the caller's own event loop (`LocalWorkers`): no process is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import psutil

from flashsale import aio, strategies
from flashsale.db import connection
from flashsale.db.guard import DatabaseGuard
from flashsale.load.config import LoadConfig
from flashsale.load.merge import WorkerResult
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.retries import KeyedRetries
from flashsale.load.sale import Sale
from flashsale.load.shapes import Closed, OpenWorkload
from flashsale.load.targets import DbTarget, HttpTarget, Target
from flashsale.load.workloads import run_closed, run_open
from flashsale.processes import ChildFailed
from flashsale.repositories import users as users_repo

RETRY_SEED_STRIDE = 1000  # worker k of a run with seed s draws its retries from the stream of seed s * 1000 + k
DB_POOL_TIMEOUT_S = 30.0  # db target: how long an order may wait for a pooled connection
START_LEAD_S = 0.2  # how far ahead of the go message the common origin lies, so that every worker gets it in time
READY_TIMEOUT_S = 120.0  # spawn, imports, connections and the users' list
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class WorkerPlan:
    """Worker `index` of `count`: its share of the run described by `config`."""

    config: LoadConfig
    url: str
    sale: Sale
    index: int = 0
    count: int = 1
    base_url: str | None = None  # http target: the service's address
    key_prefix: str = ""  # the run's prefix for idempotency keys (each worker adds its index)

    @property
    def vu_ids(self) -> range:
        """The numbers of this worker's virtual users (closed model; none in the open model)."""
        shape = self.config.shape
        return range(self.index, shape.vus if isinstance(shape, Closed) else 0, self.count)

    @property
    def closed_workload(self) -> Closed:
        """This worker's virtual users (closed model)."""
        shape = self.config.shape
        assert isinstance(shape, Closed), "the closed model's workload"
        return dataclasses.replace(shape, vus=len(self.vu_ids))

    @property
    def open_workload(self) -> OpenWorkload:
        """The run's arrival shape with this worker's share of the bound on requests in flight (open model)."""
        shape = self.config.shape
        assert not isinstance(shape, Closed), "the open model's workload"
        return dataclasses.replace(shape, max_inflight=self._share(shape.max_inflight))

    @property
    def pool_size(self) -> int:
        """The share of the run's connections (db target): every VU of this worker gets one when the run's pool has
        one for every VU."""
        config, shape = self.config, self.config.shape
        if isinstance(shape, Closed):
            return math.ceil(config.effective_pool_size * len(self.vu_ids) / shape.vus)
        return self._share(config.effective_pool_size)

    def _share(self, total: int) -> int:
        return max(1, math.ceil(total / self.count))


def plans(config: LoadConfig, url: str, sale: Sale, *, base_url: str | None = None) -> list[WorkerPlan]:
    """One plan per worker; never more workers than virtual users in the closed model."""
    count = config.worker_count
    if isinstance(config.shape, Closed):
        count = min(count, config.shape.vus)
    prefix = uuid.uuid4().hex[:12]
    return [WorkerPlan(config, url, sale, k, count, base_url, prefix) for k in range(count)]


class Worker:
    """One event loop's share of a run: its target over connections of its own, then its workload."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.outcomes = Outcomes()
        self.records = RecordBuffer()
        config = plan.config
        self.retries = (
            KeyedRetries(
                rate=config.retry_rate,
                pool=config.retry_pool,
                seed=config.seed if plan.count == 1 else config.seed * RETRY_SEED_STRIDE + plan.index,
                prefix=f"{plan.key_prefix}{plan.index}" if plan.key_prefix else None,
            )
            if config.keyed
            else None
        )
        self.target: Target | None = None

    @property
    def pinned(self) -> bool:
        return isinstance(self.target, DbTarget) and self.target.pinned

    @property
    def users(self) -> int:
        """The users this worker orders for (read when it opened)."""
        assert self.target is not None, "open() the worker first"
        return self.target.users

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        """Connect the target (closed again by `stack`): the strategy on a pool of its own, or the HTTP session."""
        if self.plan.config.target == "db":
            self.target = await self._db_target(stack)
        else:
            self.target = await self._http_target(stack)

    async def run(self, origin_ns: int, progress: Callable[[int], None] | None = None) -> WorkerResult:
        """Wait for `origin_ns`, run this worker's share of the workload measured from it, and return the result
        (its strategy counters are read by `finish`, once the strategy has stopped)."""
        config, plan, target = self.plan.config, self.plan, self.target
        assert target is not None, "open() the worker first"
        await asyncio.sleep(max(0.0, (origin_ns - time.perf_counter_ns()) / 1e9))
        process = psutil.Process()
        cpu_before = sum(process.cpu_times()[:2])
        duration_s = config.warmup_s + config.duration_s
        reporting = asyncio.create_task(_report(self.records, progress)) if progress is not None else None
        if isinstance(target, HttpTarget):
            target.origin_ns = origin_ns
        try:
            if config.model == "closed":
                stats = await run_closed(
                    plan.closed_workload, target.session, self.records, users=target.users, duration_s=duration_s,
                    seed=config.seed, grace_s=config.grace_s, origin_ns=origin_ns, vu_ids=plan.vu_ids,
                )  # fmt: skip
            else:
                stats = await run_open(
                    plan.open_workload, target.order, self.records, users=target.users, duration_s=duration_s,
                    seed=config.seed, grace_s=config.grace_s, origin_ns=origin_ns, share=(plan.index, plan.count),
                )  # fmt: skip
            if isinstance(target, HttpTarget):
                await target.settle()  # accepted orders followed to their end (each within --poll-max)
        finally:
            if reporting is not None:
                reporting.cancel()
        cpu_s = sum(process.cpu_times()[:2]) - cpu_before
        wall_s = (time.perf_counter_ns() - origin_ns) / 1e9
        if progress is not None:
            progress(len(self.records))
        return WorkerResult.measured(plan.index, self.records, target, stats=stats, cpu_s=cpu_s, wall_s=wall_s)

    def finish(self, result: WorkerResult) -> WorkerResult:
        """`result` with the strategy's counters, read after the strategy stopped (a batch flushed at stop counts)."""
        if isinstance(self.target, DbTarget):
            result.strategy_counters = dict(self.target.strategy.counters)
        return result

    async def _db_target(self, stack: contextlib.AsyncExitStack) -> DbTarget:
        plan, config = self.plan, self.plan.config
        conn = await connection.connect_async(plan.url)
        async with conn:
            user_ids = await users_repo.list_ids(conn, limit=plan.sale.users)
        strategy = strategies.get_strategy(config.strategy)
        faults = bool(config.faults)
        guard = DatabaseGuard(plan.url)
        pool = connection.make_pool(
            plan.url,
            size=plan.pool_size,
            timeout=config.pool_timeout_s or DB_POOL_TIMEOUT_S,
            name=f"flashsale-load-{plan.index}",
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
        await strategy.warm_up(pool)
        return DbTarget(
            strategy,
            pool,
            plan.sale.flash_sale_id,
            user_ids,
            outcomes=self.outcomes,
            quantity=config.quantity,
            pin_connections=config.model == "closed" and plan.pool_size >= len(plan.vu_ids),
            guard=guard,
            retries=self.retries,
        )

    async def _http_target(self, stack: contextlib.AsyncExitStack) -> HttpTarget:
        plan, config = self.plan, self.plan.config
        assert plan.base_url is not None, "the http target's plan names the service"
        target = HttpTarget(
            plan.base_url,
            plan.sale.flash_sale_id,
            outcomes=self.outcomes,
            quantity=config.quantity,
            timeout_s=config.request_timeout_s,
            retries=self.retries,
            poll_interval_s=config.poll_interval_s,
            poll_max_s=config.poll_max_s,
            honour_retry_after=config.honour_retry_after,
            retry_after_max_s=config.retry_after_max_s,
        )
        stack.push_async_callback(target.close)
        await target.open()
        return target


async def _report(records: RecordBuffer, progress: Callable[[int], None]) -> None:
    while True:
        progress(len(records))
        await asyncio.sleep(PROGRESS_EVERY_S)


class LoadGenerators(Protocol):
    """What the runner drives: flashsale's own workers (`LocalWorkers`, `ProcessWorkers`) or Locust's
    (`flashsale.load.locust.engine.LocustEngine`)."""

    async def start(self) -> None: ...

    def lead_s(self) -> float: ...  # how far ahead of run() its origin should lie

    async def run(self, origin_ns: int) -> list[WorkerResult]: ...

    def requests(self) -> int: ...  # requests made so far (progress)


class LocalWorkers:
    """One worker in the caller's event loop (`--workers 1`)."""

    def __init__(self, plan: WorkerPlan, stack: contextlib.AsyncExitStack) -> None:
        self.worker = Worker(plan)
        self._stack = stack
        self._inner: contextlib.AsyncExitStack | None = None
        self.count = 1

    @property
    def pinned(self) -> bool:
        return self.worker.pinned

    @property
    def user_count(self) -> int:
        return self.worker.users

    async def start(self) -> None:
        self._inner = await self._stack.enter_async_context(contextlib.AsyncExitStack())
        await self.worker.open(self._inner)

    def requests(self) -> int:
        return len(self.worker.records)

    async def run(self, origin_ns: int) -> list[WorkerResult]:
        result = await self.worker.run(origin_ns)
        assert self._inner is not None, "start() first"
        await self._inner.aclose()  # strategy stopped, pool closed: the database holds the final state
        return [self.worker.finish(result)]

    def lead_s(self) -> float:
        return 0.0


class ProcessWorkers:
    """`len(plans)` worker processes, each running one `Worker` on uvloop, driven over a pipe each:
    the worker says `ready` (or `failed`), the parent says `go` with the origin, the worker answers `done`
    with its `WorkerResult` after it has stopped its strategy and closed its connections."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        self.plans = plans
        self.count = len(plans)
        self._context = multiprocessing.get_context("spawn")
        self._progress = self._context.Array("q", self.count, lock=False)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._pipes: list[Connection] = []
        self.pinned = False
        self.user_count = 0

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    async def start(self) -> None:
        for plan in self.plans:
            parent, child = self._context.Pipe()
            process = self._context.Process(
                target=_worker_main,
                args=(plan, child, self._progress),
                name=f"flashsale-load-worker-{plan.index}",
                daemon=True,
            )
            process.start()
            child.close()
            self._processes.append(process)
            self._pipes.append(parent)
        answers = await asyncio.gather(*(self._receive(k, READY_TIMEOUT_S) for k in range(self.count)))
        for k, (kind, payload) in enumerate(answers):
            if kind != "ready":
                raise ChildFailed(f"load worker {k} did not start: {payload}")
        self.pinned = all(payload["pinned"] for _, payload in answers)
        self.user_count = answers[0][1]["users"]

    def requests(self) -> int:
        return sum(self._progress)

    def lead_s(self) -> float:
        return START_LEAD_S

    async def run(self, origin_ns: int) -> list[WorkerResult]:
        for pipe in self._pipes:
            pipe.send(("go", origin_ns))
        config = self.plans[0].config
        timeout = START_LEAD_S + config.warmup_s + config.duration_s + config.grace_s + 60.0
        answers = await asyncio.gather(*(self._receive(k, timeout) for k in range(self.count)))
        results = []
        for k, (kind, payload) in enumerate(answers):
            if kind != "done":
                raise ChildFailed(f"load worker {k} failed: {payload}")
            results.append(payload)
        return results

    async def stop(self) -> None:
        """Every worker process ended: those still running are told to stop, then killed by pid."""
        for pipe in self._pipes:
            with contextlib.suppress(OSError, ValueError):
                pipe.send(("stop", None))
        for process in self._processes:
            await asyncio.to_thread(process.join, 10.0)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join)
        for pipe in self._pipes:
            pipe.close()

    async def _receive(self, k: int, within_s: float) -> tuple[str, Any]:
        pipe, process = self._pipes[k], self._processes[k]
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if await asyncio.to_thread(pipe.poll, 0.5):
                try:
                    return pipe.recv()
                except EOFError:
                    break
            if not process.is_alive() and not pipe.poll():
                break
        if process.is_alive():
            return "failed", f"no answer within {within_s:.0f} s"
        return "failed", f"the process exited with status {process.exitcode}"


def _worker_main(plan: WorkerPlan, pipe: Connection, progress) -> None:
    """A worker process's body (spawned: everything it needs comes in `plan`)."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group: the parent reports it
        aio.run_anywhere(_worker(plan, pipe, progress))
    pipe.close()


async def _worker(plan: WorkerPlan, pipe: Connection, progress) -> None:
    worker = Worker(plan)
    try:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await worker.open(stack)
            except Exception as exc:
                pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
                return
            pipe.send(("ready", {"pinned": worker.pinned, "users": worker.users}))
            kind, origin_ns = await asyncio.to_thread(pipe.recv)
            if kind != "go":
                return

            def report(n: int) -> None:
                progress[plan.index] = n

            result = await worker.run(origin_ns, report)
        pipe.send(("done", worker.finish(result)))
    except Exception as exc:
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
