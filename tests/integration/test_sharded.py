"""The sharded inventory: where the units live, how the first order spreads them, how a short order is served
from several shards, and how the audit keeps counting them."""

from datetime import timedelta

import pytest

from flashsale.domain import PlaceOrder, SoldOut
from flashsale.repositories import flash_sales, shards, users
from flashsale.services import scenario
from flashsale.services.audit import audit_sale
from flashsale.services.crowd import buy_concurrently, crowd_commands


async def buy(strategy, conn, sale_id, user_id, quantity=1):
    return await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=sale_id, quantity=quantity))


class TestShardedInventory:
    async def test_the_scenario_creates_k_empty_shards(self, conn, make_scenario):
        made = await make_scenario(inventory=20, shards=3)
        assert made.shards == 3
        assert [(s.shard, s.remaining) for s in await shards.list_for_sale(conn, made.flash_sale_id)] == [
            (0, 0),
            (1, 0),
            (2, 0),
        ]
        assert (await audit_sale(conn, made.flash_sale_id)).remaining == 20

    def test_shards_are_validated(self):
        for bad in (0, -1, 1025, 2.5, True):
            with pytest.raises(scenario.InvalidScenario, match="shards"):
                scenario.validate(users=1, inventory=1, per_user_limit=1, window=timedelta(hours=1), shards=bad)

    async def test_the_first_order_spreads_the_units_over_the_shards(self, make_strategy, conn, make_scenario):
        made = await make_scenario(inventory=22, shards=4, per_user_limit=5)
        sharded = make_strategy("sharded")
        user_id = (await users.list_ids(conn, limit=1))[0]
        await buy(sharded, conn, made.flash_sale_id, user_id, quantity=2)

        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 0
        held = [s.remaining for s in await shards.list_for_sale(conn, made.flash_sale_id)]
        assert sum(held) == 20
        assert max(held) - min(held) <= 2  # 6, 6, 5, 5 before the order took 2 from the fullest
        assert dict(sharded.counters) == {"slow_path": 1, "spread": 1}
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.remaining == 20

        await buy(sharded, conn, made.flash_sale_id, user_id)
        assert sharded.counters["free_shard"] == 1  # from now on one shard serves each order

    async def test_units_scattered_over_shards_still_sell_and_sold_out_means_all_are_short(
        self, make_strategy, conn, make_scenario
    ):
        made = await make_scenario(users=3, inventory=4, shards=4, per_user_limit=10)
        sharded = make_strategy("sharded")
        first, second, third = await users.list_ids(conn, limit=3)
        await buy(sharded, conn, made.flash_sale_id, first)  # spreads 1, 1, 1, 1 and takes one
        await buy(sharded, conn, made.flash_sale_id, second, quantity=3)  # no shard holds 3: taken from three
        with pytest.raises(SoldOut):
            await buy(sharded, conn, made.flash_sale_id, third)
        assert [s.remaining for s in await shards.list_for_sale(conn, made.flash_sale_id)] == [0, 0, 0, 0]
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.confirmed_quantity, audit.remaining) == (4, 0)

    async def test_under_contention_every_order_gets_a_shard_without_the_slow_path(
        self, make_strategy, conn, pool, make_scenario
    ):
        """With stock in every shard, an order either finds a free shard or waits for one and takes it; it never
        falls through to the slow path (only the first order does, to spread the units)."""
        made = await make_scenario(users=200, inventory=100_000, per_user_limit=100, shards=4)
        user_ids = await users.list_ids(conn, limit=200)
        sharded = make_strategy("sharded")
        await buy(sharded, conn, made.flash_sale_id, user_ids[0])  # spreads the units (a crowd would all queue)
        for wave in range(4):
            commands = crowd_commands(user_ids, made.flash_sale_id, buyers=64, seed=wave)
            result = await buy_concurrently(pool, sharded, commands)
            assert result.outcomes["created"] == 64
        assert sharded.counters["slow_path"] == 1
        assert sharded.counters["waited_for_shard"] > 0  # 64 buyers on 4 shards: most found them all held
        assert sharded.counters["free_shard"] + sharded.counters["waited_for_shard"] == 4 * 64
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()

    async def test_a_sale_without_shards_sells_from_its_row(self, make_strategy, conn, database_url, make_scenario):
        made = await make_scenario(inventory=2)
        await conn.execute("DELETE FROM flash_sale_shards WHERE flash_sale_id = %s", [made.flash_sale_id])
        sharded = make_strategy("sharded")
        user_ids = await users.list_ids(conn, limit=3)
        await buy(sharded, conn, made.flash_sale_id, user_ids[0])
        await buy(sharded, conn, made.flash_sale_id, user_ids[1])
        with pytest.raises(SoldOut):
            await buy(sharded, conn, made.flash_sale_id, user_ids[2])
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 0)

    async def test_other_strategies_see_units_moved_into_shards_as_gone(self, make_strategy, conn, make_scenario):
        """The shards belong to `sharded`: once it has spread a sale, the row holds nothing for the others, and the
        audit still adds up."""
        made = await make_scenario(inventory=5)
        user_ids = await users.list_ids(conn, limit=2)
        await buy(make_strategy("sharded"), conn, made.flash_sale_id, user_ids[0])
        with pytest.raises(SoldOut):
            await buy(make_strategy("pessimistic"), conn, made.flash_sale_id, user_ids[1])
        assert (await audit_sale(conn, made.flash_sale_id)).ok


class TestSpreadAndTake:
    def test_spread_evenly_first_shards_first(self):
        from flashsale.strategies.sharded import spread

        assert spread(10, {0: 0, 1: 0, 2: 0}) == {0: 4, 1: 3, 2: 3}
        assert spread(2, {0: 1, 1: 0, 2: 5}) == {0: 2, 1: 1, 2: 5}

    def test_take_from_the_fullest_then_the_row(self):
        from flashsale.strategies.sharded import take

        assert take(3, {0: 1, 1: 2, 2: 1}) == ({1: 2, 0: 1}, 0)
        assert take(2, {}) == ({}, 2)
        assert take(5, {0: 1, 1: 1}) == ({0: 1, 1: 1}, 3)
