"""Real concurrent connections racing for one sale, then an audit of what the database holds: for every safe
strategy, and for `unsafe`, which must be caught."""

from collections import Counter

import pytest

from flashsale import strategies
from flashsale.audit import audit_sale
from flashsale.crowd import buy_concurrently, crowd_commands
from flashsale.repositories import orders, users

SAFE = strategies.names(safe=True)
WAVE = 70  # the pool's size: every buyer of a wave holds its own connection


@pytest.fixture(params=SAFE)
def strategy(request, make_strategy):
    return make_strategy(request.param, patient=True)


def check_retry_accounting(strategy):
    """Every failed attempt was either retried or given up on (`busy`)."""
    counters = strategy.counters
    for failures in ("lock_not_available", "version_conflicts", "serialization_failures"):
        if failures in counters:
            assert counters[failures] == counters["retries"] + counters["busy"], dict(counters)


class TestSafeStrategies:
    async def test_64_buyers_on_50_units_with_shared_users(self, strategy, conn, pool, make_scenario):
        made = await make_scenario(users=60, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=60)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70)  # 10 users have two buyers racing
        result = await buy_concurrently(pool, strategy, commands)

        assert result.outcomes["created"] == 50
        assert result.outcomes["sold_out"] + result.outcomes["per_user_limit_exceeded"] == 20, result.outcomes
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.confirmed_quantity, audit.remaining, audit.limit_violations) == (50, 50, 0, 0)
        assert len({order.user_id for order in result.orders}) == 50
        check_retry_accounting(strategy)

    async def test_the_limit_binds_before_the_stock(self, strategy, conn, pool, make_scenario):
        made = await make_scenario(users=40, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=40)
        # 64 buyers from 40 users: 24 users have two buyers racing for them, and the stock never runs out.
        result = await buy_concurrently(pool, strategy, crowd_commands(user_ids, made.flash_sale_id, buyers=64))

        assert (result.outcomes["created"], result.outcomes["per_user_limit_exceeded"]) == (40, 24)
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining, audit.limit_violations) == (40, 10, 0)

    async def test_mixed_quantities_on_1000_units(self, strategy, conn, pool, make_scenario):
        made = await make_scenario(users=30, inventory=1000, per_user_limit=4)
        user_ids = await users.list_ids(conn, limit=30)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70, quantities=(1, 2, 3), seed=3)
        result = await buy_concurrently(pool, strategy, commands)

        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.orders == result.outcomes["created"] > 30
        assert audit.confirmed_quantity == sum(order.quantity for order in result.orders)
        assert set(result.outcomes) <= {"created", "per_user_limit_exceeded"}  # 1000 units never run out here

    async def test_selling_out_in_mixed_quantities_refuses_nobody_wrongly(self, strategy, conn, pool, make_scenario):
        made = await make_scenario(users=80, inventory=300, per_user_limit=6)
        user_ids = await users.list_ids(conn, limit=80)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=280, quantities=(1, 2, 3), seed=5)
        results = []
        for start in range(0, len(commands), WAVE):
            results += (await buy_concurrently(pool, strategy, commands[start : start + WAVE])).results

        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.remaining < 3  # demand (about 560 units) exceeds the stock: it sold out
        held = Counter()
        for order in await orders.list_for_sale(conn, made.flash_sale_id):
            held[order.user_id] += order.quantity
        assert sum(held.values()) == 300 - audit.remaining
        assert max(held.values()) <= 6
        # Stock only falls and holdings only grow, so a refusal that was right when given is still right now.
        for command, result in zip(commands, results, strict=True):
            if result == "sold_out":
                assert command.quantity > audit.remaining
            elif result == "per_user_limit_exceeded":
                assert held[command.user_id] + command.quantity > 6
            else:
                assert not isinstance(result, str), result
        check_retry_accounting(strategy)


class TestUnsafe:
    async def test_a_deterministic_race_oversells_and_the_audit_reports_it(
        self, make_strategy, conn, pool, make_scenario
    ):
        made = await make_scenario(users=60, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=60)
        # Every buyer reads before anyone writes: the sleep between read and write is far longer than 64 reads.
        unsafe = make_strategy("unsafe", race_delay_s=0.5)
        result = await buy_concurrently(pool, unsafe, crowd_commands(user_ids, made.flash_sale_id, buyers=64))

        assert result.outcomes["created"] == 64
        audit = await audit_sale(conn, made.flash_sale_id)
        assert not audit.ok
        assert audit.oversold == 14
        assert audit.limit_violations == 4  # the four users who had two buyers got two units each
        assert audit.inventory_mismatch == 64 - 1  # every writer wrote 50 - 1: the row says one unit sold
        problems = " ".join(audit.problems())
        assert "OVERSOLD by 14 units" in problems
        assert "4 users above the per-user limit" in problems

    async def test_without_a_race_it_sells_correctly(self, make_strategy, conn, make_scenario):
        """The unsafe strategy's logic is right; only concurrency breaks it (one buyer at a time here)."""
        from flashsale.domain import PlaceOrder, SoldOut

        made = await make_scenario(users=5, inventory=3)
        unsafe = make_strategy("unsafe")
        outcomes = []
        for user_id in await users.list_ids(conn, limit=5):
            try:
                await unsafe.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
                outcomes.append("created")
            except SoldOut:
                outcomes.append("sold_out")
        assert outcomes == ["created"] * 3 + ["sold_out"] * 2
        assert (await audit_sale(conn, made.flash_sale_id)).ok
