"""Real concurrent connections racing for one sale, then an audit of what the database holds."""

import random

from flashsale import strategies
from flashsale.audit import audit_sale
from flashsale.crowd import buy_concurrently, crowd_commands
from flashsale.repositories import users


async def test_64_buyers_on_50_units_with_shared_users(conn, pool, make_scenario):
    made = await make_scenario(users=40, inventory=50, per_user_limit=1)
    user_ids = await users.list_ids(conn, limit=40)
    # 64 buyers from 40 users: 24 users have two buyers racing for them.
    commands = crowd_commands(user_ids, made.flash_sale_id, buyers=64)
    result = await buy_concurrently(pool, strategies.get_strategy("pessimistic"), commands)

    assert result.outcomes["created"] == 40  # one per user: the limit binds before the stock does
    assert result.outcomes["per_user_limit_exceeded"] == 24
    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.ok, audit.problems()
    assert (audit.orders, audit.remaining, audit.limit_violations) == (40, 10, 0)


async def test_sells_exactly_the_inventory_when_buyers_outnumber_it(conn, pool, make_scenario):
    made = await make_scenario(users=60, inventory=50, per_user_limit=1)
    user_ids = await users.list_ids(conn, limit=60)
    commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70)  # 10 users race with themselves
    result = await buy_concurrently(pool, strategies.get_strategy("pessimistic"), commands)

    assert result.outcomes["created"] == 50
    assert result.outcomes["created"] + result.outcomes["sold_out"] + result.outcomes["per_user_limit_exceeded"] == 70
    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.ok, audit.problems()
    assert (audit.orders, audit.confirmed_quantity, audit.remaining) == (50, 50, 0)
    assert audit.confirmed_quantity == audit.total - audit.remaining
    assert audit.limit_violations == 0


async def test_mixed_quantities_on_a_large_sale(conn, pool, make_scenario):
    made = await make_scenario(users=30, inventory=100, per_user_limit=4)
    user_ids = await users.list_ids(conn, limit=30)
    random.seed(3)
    commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70, quantities=(1, 2, 3), seed=3)
    result = await buy_concurrently(pool, strategies.get_strategy("pessimistic"), commands)

    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.ok, audit.problems()
    assert audit.confirmed_quantity == sum(o.quantity for o in result.orders)
    assert audit.orders == result.outcomes["created"] > 0
