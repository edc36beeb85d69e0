"""Every strategy's pgbench script runs under pgbench, as its `pgbench_plan` says, against a real scenario, and
does what the strategy does: it sells, and (the unsafe one excepted) the audit stays clean."""

import pytest

from flashsale import strategies
from flashsale.audit import audit_sale
from flashsale.load.pgbench import run_pgbench
from flashsale.repositories import shards


@pytest.mark.parametrize("name", strategies.names())
async def test_the_script_runs_and_sells(name, make_strategy, conn, database_url, make_scenario):
    made = await make_scenario(users=50, inventory=100_000, per_user_limit=100_000)
    strategy = make_strategy(name)
    await strategy.prepare_pgbench(conn, made.flash_sale_id)

    plan = strategy.pgbench_plan(vus=2)
    result = run_pgbench(
        database_url,
        script=plan.script,
        flash_sale_id=made.flash_sale_id,
        users=made.users,
        clients=plan.clients,
        duration_s=1,
        variables=plan.variables,
        options=plan.options,
    )

    assert result.transactions > 0
    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.orders > 0
    if strategy.safe:
        assert audit.ok, audit.problems()
    if name in ("pessimistic", "procedure", "atomic", "sharded", "batched", "serializable"):  # none skips an order
        assert audit.orders == result.transactions * plan.orders_per_transaction


async def test_sharded_prepares_the_sale_by_spreading_its_units(make_strategy, conn, make_scenario):
    made = await make_scenario(inventory=80, shards=8)
    await make_strategy("sharded").prepare_pgbench(conn, made.flash_sale_id)
    assert [s.remaining for s in await shards.list_for_sale(conn, made.flash_sale_id)] == [10] * 8
    assert (await audit_sale(conn, made.flash_sale_id)).remaining == 80
