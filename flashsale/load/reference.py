"""The physical reference of a load configuration, of either kind (the strategy's `reference_plan` says which):
pgbench replaying the strategy's own SQL, or, for a strategy that decides in Redis, redis-benchmark replaying its
own Lua script; on the same scenario at the same concurrency, then the same audit as every load run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from flashsale import aio, stock_gate, strategies
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.kv import connection as kv_connection
from flashsale.load.config import LoadConfig
from flashsale.load.pgbench import PgbenchResult, run_pgbench
from flashsale.load.placing import database_placed
from flashsale.load.redis_benchmark import RedisBenchmarkMissing, RedisBenchmarkResult, run_redis_benchmark
from flashsale.load.sale import Sale, configured_sale
from flashsale.load.shapes import Closed
from flashsale.services.audit import Audit, audit_sale
from flashsale.stock_gate.gate import microseconds
from flashsale.strategies.base import PGBENCH_VARIANTS, OrderStrategy, PgbenchPlan, RedisBenchmarkPlan, ReferencePlan


@dataclass(frozen=True)
class Reference:
    plan: ReferencePlan
    audit: Audit
    sale: Sale
    pgbench: PgbenchResult | None = None  # the figures of a pgbench reference
    redis_benchmark: RedisBenchmarkResult | None = None  # the figures of a redis-benchmark reference
    admitted: int | None = None  # redis-benchmark: the orders its decisions admitted (never written)
    missing: str | None = None  # why there are no figures: the tool is not installed here

    @property
    def kind(self) -> str:
        return self.plan.kind

    @property
    def requests_per_s(self) -> float | None:
        """pgbench's transactions, or redis-benchmark's script calls (decisions), per second."""
        if self.pgbench is not None:
            return self.pgbench.tps
        return self.redis_benchmark.rps if self.redis_benchmark is not None else None

    @property
    def orders_per_s(self) -> float | None:
        """Orders per second: those the audit found (pgbench's TPS also counts transactions that sold nothing), or
        those redis-benchmark's decisions admitted."""
        if self.pgbench is not None:
            return self.audit.orders / self.pgbench.duration_s
        if self.redis_benchmark is not None and self.admitted is not None and self.redis_benchmark.duration_s:
            return self.admitted / self.redis_benchmark.duration_s
        return None

    @property
    def latency_avg_ms(self) -> float | None:
        result = self.pgbench or self.redis_benchmark
        return result.latency_avg_ms if result is not None else None

    @property
    def clients(self) -> int | None:
        result = self.pgbench or self.redis_benchmark
        return result.clients if result is not None else None

    @property
    def client_cpu_percent(self) -> float | None:
        result = self.pgbench or self.redis_benchmark
        return result.client_cpu_percent if result is not None else None


def run_reference(
    config: LoadConfig,
    *,
    protocol: str = "prepared",
    variant: str = PGBENCH_VARIANTS[0],
    requests: int | None = None,
) -> Reference:
    """The strategy's reference line on the scenario `config` describes (fresh unless `config.reset` is False), with
    the clients its plan gives for the virtual users of `config` (its closed model), then the audit: pgbench for
    `config.duration_s` (whole seconds) with its script of `variant` and `protocol`, or redis-benchmark for its
    plan's number of requests (or `requests`)."""
    url = ready_url(config.database_url)
    strategy = strategies.get_strategy(config.strategy)
    if not isinstance(config.shape, Closed):
        raise ValueError("a reference runs the closed model (virtual users), not an arrival rate")
    plan = strategy.reference_plan(config.shape.vus, variant=variant)
    if isinstance(plan, RedisBenchmarkPlan):
        if requests is not None:
            plan = dataclasses.replace(plan, requests=requests)
        return _redis_benchmark_reference(url, strategy, plan, config)
    return _pgbench_reference(url, strategy, plan, config, protocol)


def _pgbench_reference(
    url: str, strategy: OrderStrategy, plan: PgbenchPlan, config: LoadConfig, protocol: str
) -> Reference:
    async def prepare() -> Sale:
        conn = await connection.connect_async(url)
        async with conn:
            sale = await configured_sale(conn, config)
            await strategy.prepare_pgbench(conn, sale.flash_sale_id)
            return sale

    sale = aio.run_anywhere(prepare())
    with database_placed(url, config.db_cpus):
        result = run_pgbench(
            url,
            script=plan.script,
            flash_sale_id=sale.flash_sale_id,
            users=sale.users,
            clients=plan.clients,  # e.g. batched: one client per worker, a batch per transaction
            duration_s=config.duration_s,
            quantity=config.quantity,
            protocol=protocol,
            variables=plan.variables,
            options=plan.options,
            cpus=config.client_cpus,  # on the client's CPUs, as the load runner's client runs
        )
    return Reference(plan=plan, audit=aio.run_anywhere(_audit(url, sale, None)), sale=sale, pgbench=result)


def _redis_benchmark_reference(
    url: str, strategy: OrderStrategy, plan: RedisBenchmarkPlan, config: LoadConfig
) -> Reference:
    """The gate built from the sale, redis-benchmark's decisions against it, then the gate rebuilt from the
    database again: the orders the benchmark admitted were never written, and must not stay counted."""
    redis_url = kv_connection.redis_url()

    async def prepare() -> tuple[Sale, int]:
        conn = await connection.connect_async(url)
        async with conn:
            sale = await configured_sale(conn, config)
        return sale, await _rebuilt_stock(url, strategy, sale)

    sale, before = aio.run_anywhere(prepare())
    variables = {
        "sale": str(sale.flash_sale_id),
        "now_us": str(microseconds(datetime.now(UTC))),
        "quantity": str(config.quantity),
    }
    result: RedisBenchmarkResult | None = None
    missing: str | None = None
    try:
        result = run_redis_benchmark(redis_url, plan, users=sale.users, variables=variables, cpus=config.client_cpus)
    except RedisBenchmarkMissing as exc:
        missing = str(exc)

    async def settle() -> tuple[int, Audit]:
        view = await stock_gate.read_view(sale.flash_sale_id, redis_url)
        left = view.stock if view is not None else before
        await _rebuilt_stock(url, strategy, sale)
        return (before - left) // config.quantity, await _audit(url, sale, redis_url)

    admitted, audit = aio.run_anywhere(settle())
    return Reference(
        plan=plan,
        audit=audit,
        sale=sale,
        redis_benchmark=result,
        admitted=admitted if result is not None else None,
        missing=missing,
    )


async def _rebuilt_stock(url: str, strategy: OrderStrategy, sale: Sale) -> int:
    """Rebuild the strategy's gates from the database (its `start` does), and the units the sale's gate holds."""
    async with connection.make_pool(url, size=1) as pool:
        await strategy.start(pool)
        await strategy.stop()
    view = await stock_gate.read_view(sale.flash_sale_id)
    assert view is not None, "start() builds every sale's gate"
    return view.stock


async def _audit(url: str, sale: Sale, redis_url: str | None) -> Audit:
    """The sale's audit; with `redis_url`, its gate there compared with the database."""
    gate = await stock_gate.read_view(sale.flash_sale_id, redis_url) if redis_url is not None else None
    conn = await connection.connect_async(url)
    async with conn:
        return await audit_sale(conn, sale.flash_sale_id, gate=gate)
