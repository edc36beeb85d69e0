"""The physical reference of a load configuration: pgbench replaying the strategy's own SQL (its `pgbench_plan`)
on the same scenario at the same concurrency, then the same audit as every load run."""

from __future__ import annotations

from dataclasses import dataclass

from flashsale import aio, strategies
from flashsale.db import connection
from flashsale.db.migrate import ready_url
from flashsale.load.config import LoadConfig
from flashsale.load.pgbench import PgbenchResult, run_pgbench
from flashsale.load.placing import database_placed
from flashsale.load.sale import Sale, configured_sale
from flashsale.load.shapes import Closed
from flashsale.services.audit import Audit, audit_sale
from flashsale.strategies.base import PGBENCH_VARIANTS, PgbenchPlan


@dataclass(frozen=True)
class Reference:
    pgbench: PgbenchResult
    plan: PgbenchPlan
    audit: Audit
    sale: Sale

    @property
    def orders_per_s(self) -> float:
        """Orders the audit found, per second: pgbench's TPS also counts transactions that sold nothing."""
        return self.audit.orders / self.pgbench.duration_s


def run_reference(config: LoadConfig, *, protocol: str = "prepared", variant: str = PGBENCH_VARIANTS[0]) -> Reference:
    """pgbench for `config.duration_s` (whole seconds) with the clients the strategy's plan gives for the virtual
    users of `config` (its closed model) and its script of `variant`, on the scenario `config` describes (fresh
    unless `config.reset` is False), then the audit."""
    if not isinstance(config.shape, Closed):
        raise ValueError("pgbench runs the closed model (virtual users), not an arrival rate")
    vus = config.shape.vus
    url = ready_url(config.database_url)
    strategy = strategies.get_strategy(config.strategy)

    async def prepare() -> Sale:
        conn = await connection.connect_async(url)
        async with conn:
            sale = await configured_sale(conn, config)
            await strategy.prepare_pgbench(conn, sale.flash_sale_id)
            return sale

    async def audit(sale: Sale) -> Audit:
        conn = await connection.connect_async(url)
        async with conn:
            return await audit_sale(conn, sale.flash_sale_id)

    sale = aio.run_anywhere(prepare())
    # e.g. batched: one client per worker, a batch per transaction
    plan = strategy.pgbench_plan(vus, variant=variant)
    with database_placed(url, config.db_cpus):
        result = _run_plan(url, plan, sale, config, protocol)
    return Reference(pgbench=result, plan=plan, audit=aio.run_anywhere(audit(sale)), sale=sale)


def _run_plan(url: str, plan: PgbenchPlan, sale: Sale, config: LoadConfig, protocol: str) -> PgbenchResult:
    """pgbench on the client's CPUs (`config.client_cpus`), as the load runner's client runs."""
    return run_pgbench(
        url,
        script=plan.script,
        flash_sale_id=sale.flash_sale_id,
        users=sale.users,
        clients=plan.clients,
        duration_s=config.duration_s,
        quantity=config.quantity,
        protocol=protocol,
        variables=plan.variables,
        options=plan.options,
        cpus=config.client_cpus,
    )
