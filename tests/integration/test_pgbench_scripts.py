"""Every strategy's pgbench script runs under pgbench against a real scenario and does what the strategy does:
sells (the unsafe one excepted, the audit stays clean)."""

import pytest

from flashsale import strategies
from flashsale.audit import audit_sale
from flashsale.domain import PlaceOrder
from flashsale.repositories import users
from flashsale.strategies.replay import replay


@pytest.mark.parametrize("name", strategies.names())
async def test_the_script_runs_and_sells(name, make_strategy, conn, database_url, make_scenario):
    made = await make_scenario(users=50, inventory=100_000, per_user_limit=100_000)
    strategy = make_strategy(name)
    if name == "sharded":  # the script expects the units in the shards already: the first order puts them there
        user_id = (await users.list_ids(conn, limit=1))[0]
        await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
    before = (await audit_sale(conn, made.flash_sale_id)).orders

    plan = strategy.pgbench_plan(vus=2)
    result = replay(database_url, plan, flash_sale_id=made.flash_sale_id, users=made.users, transactions=10)

    assert result.transactions == 10 * plan.clients
    assert result.tps > 0
    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.orders - before > 0
    if strategy.safe:
        assert audit.ok, audit.problems()
    if name in ("pessimistic", "procedure", "atomic", "batched", "serializable"):  # these never skip an order
        assert audit.orders - before == result.transactions * plan.orders_per_transaction
