"""Every strategy gives the same outcome for the same order, each checked against the rows left in the database.

One connection, one order at a time: what each strategy does under concurrency is in test_concurrency.py.
"""

import itertools
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from flashsale import strategies
from flashsale.domain import (
    OrderStatus,
    PerUserLimitExceeded,
    PlaceOrder,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.repositories import orders, users
from flashsale.services.audit import audit_sale
from flashsale.strategies import Busy

ALL = strategies.names()


async def first_user(conn):
    return (await users.list_ids(conn, limit=1))[0]


@pytest.fixture(params=ALL)
def strategy(request, make_strategy):
    return make_strategy(request.param)


class TestOutcomes:
    async def test_creates_a_confirmed_order_and_takes_the_units(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=5, per_user_limit=3)
        user_id = await first_user(conn)
        order = await strategy.create_order(
            conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2)
        )
        assert order.status is OrderStatus.CONFIRMED
        assert (order.user_id, order.flash_sale_id, order.quantity) == (user_id, made.flash_sale_id, 2)
        assert await orders.list_for_sale(conn, made.flash_sale_id) == [order]
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.remaining == 3

    async def test_place_order_through_a_pool(self, strategy, pool, conn, make_scenario):
        made = await make_scenario(inventory=5)
        await strategy.start(pool)
        order = await strategy.place_order(
            pool, PlaceOrder(user_id=await first_user(conn), flash_sale_id=made.flash_sale_id)
        )
        assert await orders.get(conn, order.id) == order

    async def test_sold_out_leaves_everything_as_it_was(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=1, per_user_limit=5)
        with pytest.raises(SoldOut):
            await strategy.create_order(
                conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=made.flash_sale_id, quantity=2)
            )
        assert await orders.list_for_sale(conn, made.flash_sale_id) == []
        assert (await audit_sale(conn, made.flash_sale_id)).remaining == 1

    async def test_per_user_limit_counts_earlier_orders(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=10, per_user_limit=2)
        user_id = await first_user(conn)
        await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        with pytest.raises(PerUserLimitExceeded):
            await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
        audit = await audit_sale(conn, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.limit_violations) == (1, 8, 0)

    async def test_stock_is_checked_before_the_limit(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=2, per_user_limit=2)
        user_id = await first_user(conn)
        await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        with pytest.raises(SoldOut):  # both rules forbid it; every strategy names the same one
            await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))

    @pytest.mark.parametrize(
        ("starts_in", "window"),
        [(timedelta(hours=1), timedelta(hours=1)), (-timedelta(hours=2), timedelta(hours=1))],
        ids=["not-yet-open", "closed"],
    )
    async def test_sale_not_active(self, strategy, conn, make_scenario, starts_in, window):
        made = await make_scenario(starts_in=starts_in, window=window)
        with pytest.raises(SaleNotActive):
            await strategy.create_order(
                conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=made.flash_sale_id)
            )
        assert await orders.list_for_sale(conn, made.flash_sale_id) == []

    async def test_unknown_sale(self, strategy, conn, make_scenario):
        await make_scenario()
        with pytest.raises(SaleNotFound):
            await strategy.create_order(conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=uuid4()))

    async def test_unknown_user_changes_nothing(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=5)
        with pytest.raises(UserNotFound):
            await strategy.create_order(conn, PlaceOrder(user_id=uuid4(), flash_sale_id=made.flash_sale_id))
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (0, 5)

    async def test_connection_is_usable_after_each_refusal(self, strategy, conn, make_scenario):
        made = await make_scenario(inventory=2, per_user_limit=1)
        user_id = await first_user(conn)
        refusals = [
            (SoldOut, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=3)),
            (UserNotFound, PlaceOrder(user_id=uuid4(), flash_sale_id=made.flash_sale_id)),
            (SaleNotFound, PlaceOrder(user_id=user_id, flash_sale_id=uuid4())),
        ]
        for _ in range(3):  # often enough for psycopg to prepare the statements in between
            for error, command in refusals:
                with pytest.raises(error):
                    await strategy.create_order(conn, command)
        order = await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
        assert order.quantity == 1
        assert (await audit_sale(conn, made.flash_sale_id)).remaining == 1

    async def test_many_orders_on_one_connection(self, strategy, conn, make_scenario):
        """Past psycopg's prepare threshold (5 executions), the prepared statements give the same results."""
        made = await make_scenario(users=12, inventory=10, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=12)
        outcomes = []
        for user_id in user_ids:
            try:
                await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
                outcomes.append("created")
            except SoldOut:
                outcomes.append("sold_out")
        assert outcomes == ["created"] * 10 + ["sold_out"] * 2
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (10, 0)


# What each strategy's summary must name: the mechanism that sets it apart.
MECHANISM = {
    "pessimistic": "SELECT ... FOR UPDATE",
    "pessimistic_nowait": "FOR UPDATE NOWAIT",
    "optimistic": "version",
    "serializable": "SERIALIZABLE",
    "procedure": "place_order(sale, user, quantity)",
    "atomic": "single conditional statement",
    "sharded": "flash_sale_shards",
    "batched": "queue",
    "redis_gate": "One Lua script",
    "unsafe": "UNSAFE",
}


class TestInjectedClock:
    """The strategies that check the sale window in Python check it against their `clock`, not the database's."""

    @pytest.mark.parametrize("name", ["optimistic", "serializable", "batched", "unsafe"])
    async def test_the_window_is_the_clock_s(self, name, make_strategy, conn, pool, make_scenario):
        made = await make_scenario(users=2, inventory=5)  # open for an hour from now, by the database's time
        first, second = await users.list_ids(conn, limit=2)
        late = make_strategy(name, clock=lambda: datetime.now(UTC) + timedelta(hours=2))
        with pytest.raises(SaleNotActive):
            await late.place_order(pool, PlaceOrder(user_id=first, flash_sale_id=made.flash_sale_id))
        on_time = make_strategy(name, clock=lambda: datetime.now(UTC) + timedelta(minutes=30))
        await on_time.place_order(pool, PlaceOrder(user_id=second, flash_sale_id=made.flash_sale_id))
        audit = await audit_sale(conn, made.flash_sale_id)
        assert (audit.orders, audit.remaining) == (1, 4)

    async def test_atomic_answers_busy_when_no_reason_explains_a_refusal(self, make_strategy, conn, make_scenario):
        """The sale opens between the statement and the read that explains its refusal, three times over (the clock
        says "not yet" to each statement and "open" to each read): the statement refuses, the read finds nothing
        against the order, and the order is given up as `busy`, not placed or refused."""
        made = await make_scenario(users=1, inventory=5, starts_in=timedelta(hours=1))
        (user,) = await users.list_ids(conn, limit=1)
        ticks = itertools.cycle([timedelta(0), timedelta(hours=1, minutes=30)])  # statement, then its explanation
        atomic = make_strategy("atomic", clock=lambda: datetime.now(UTC) + next(ticks))
        with pytest.raises(Busy) as busy:
            await atomic.create_order(conn, PlaceOrder(user_id=user, flash_sale_id=made.flash_sale_id))
        assert busy.value.code == "busy"
        assert atomic.counters["refusals_explained"] == 3
        assert (await audit_sale(conn, made.flash_sale_id)).orders == 0
        # With the clock saying "not yet" to both, the same refusal is explained: not active yet.
        with pytest.raises(SaleNotActive):
            await make_strategy("atomic").create_order(conn, PlaceOrder(user_id=user, flash_sale_id=made.flash_sale_id))


class TestCatalogue:
    def test_every_strategy_builds_with_defaults_and_describes_itself(self):
        for name in ALL:
            strategy = strategies.get_strategy(name)
            assert strategy.name == name
            assert MECHANISM[name] in strategy.summary, name
            if strategy.reference_kind == "pgbench":
                assert "SELECT" in strategy.pgbench_script() or "place_order" in strategy.pgbench_script()
            else:
                with pytest.raises(strategies.NoPgbenchScript, match="its reference line is redis-benchmark"):
                    strategy.pgbench_script()

    def test_every_strategy_names_its_reference_line(self):
        """pgbench replaying its SQL, or (redis_gate) redis-benchmark sending its Lua script, with the same clients."""
        for name in ALL:
            strategy = strategies.get_strategy(name)
            plan = strategy.reference_plan(8)
            assert plan.kind == strategy.reference_kind, name
            if plan.kind == "pgbench":
                assert plan == strategy.pgbench_plan(8)
            else:
                assert (plan.clients, "redis.call" in plan.script) == (8, True)

    def test_only_unsafe_is_unsafe(self):
        assert strategies.names(safe=False) == ["unsafe"]
        assert "unsafe" not in strategies.names(safe=True)
        assert "UNSAFE" in strategies.get_strategy("unsafe").summary

    def test_unknown_parameters_are_refused(self):
        with pytest.raises(TypeError):
            strategies.get_strategy("atomic", retries=3)

    @pytest.mark.parametrize(
        ("name", "params"),
        [
            ("optimistic", {"retries": -1}),
            ("serializable", {"retries": 1.5}),
            ("pessimistic_nowait", {"backoff_s": -0.1}),
            ("batched", {"batch_size": 0}),
            ("batched", {"queue_size": 0}),
            ("unsafe", {"race_delay_s": -1}),
            ("redis_gate", {"redis_connections": 0}),
            ("redis_gate", {"wait_s": 0}),
        ],
    )
    def test_bad_parameters_are_refused(self, name, params):
        with pytest.raises(ValueError, match=r"must be"):
            strategies.get_strategy(name, **params)

    def test_pgbench_plans(self):
        batched = strategies.get_strategy("batched", batch_size=50)
        assert (batched.pgbench_plan(64).variables, batched.pgbench_plan(64).orders_per_transaction) == (
            {"batch": "50"},
            50,
        )
        assert batched.pgbench_plan(8).orders_per_transaction == 8  # no more than 8 can be waiting
        assert batched.pgbench_plan(64).clients == 1
        assert strategies.get_strategy("serializable", retries=4).pgbench_plan(64).options == ("--max-tries=5",)
        assert strategies.get_strategy("atomic").pgbench_plan(64).clients == 64
