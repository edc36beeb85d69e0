"""The retry paths, made to happen on purpose: a row held by another connection (`pessimistic_nowait`), an order
committed by another connection between a strategy's read and its write (`optimistic`, `serializable`), and the
per-user lock that makes single-statement limit checks exact (`atomic`, `sharded`)."""

import asyncio

import pytest

from flashsale.db import connection
from flashsale.domain import PerUserLimitExceeded, PlaceOrder
from flashsale.repositories import flash_sales, locks, placements, users
from flashsale.services.audit import audit_sale
from flashsale.strategies import Busy, Optimistic, Serializable
from flashsale.strategies.pessimistic import create_order as pessimistic_order
from tests.waiting import until, until_lock_waiters

FAST = {"backoff_s": 0.001, "max_backoff_s": 0.002}


@pytest.fixture
async def other(database_url):
    """A second connection, for the competing transaction."""
    c = await connection.connect_async(database_url)
    async with c:
        yield c


@pytest.fixture
async def watcher(database_url):
    """A third connection, to watch the others in pg_stat_activity."""
    c = await connection.connect_async(database_url)
    async with c:
        yield c


async def two_users(conn):
    return await users.list_ids(conn, limit=2)


class TestPessimisticNowait:
    async def test_a_row_held_throughout_gives_busy_after_the_bounded_retries(
        self, make_strategy, conn, other, make_scenario
    ):
        made = await make_scenario(inventory=5)
        buyer, _ = await two_users(conn)
        nowait = make_strategy("pessimistic_nowait", retries=3, **FAST)
        async with other.transaction():
            await flash_sales.get_for_update(other, made.flash_sale_id)
            with pytest.raises(Busy) as busy:
                await nowait.create_order(conn, PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id))
        assert busy.value.code == "busy"
        assert busy.value.retry_after_s > 0
        assert dict(nowait.counters) == {"lock_not_available": 4, "retries": 3, "busy": 1}
        # Released, the same strategy on the same connection goes through at once.
        await nowait.create_order(conn, PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id))
        assert nowait.counters["retries"] == 3
        assert (await audit_sale(conn, made.flash_sale_id)).orders == 1

    async def test_a_row_released_during_the_backoff_is_taken_on_a_retry(
        self, make_strategy, conn, other, make_scenario
    ):
        made = await make_scenario(inventory=5)
        buyer, _ = await two_users(conn)
        nowait = make_strategy("pessimistic_nowait", retries=1000, **FAST)
        async with other.transaction():
            await flash_sales.get_for_update(other, made.flash_sale_id)
            attempt = asyncio.create_task(
                nowait.create_order(conn, PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id))
            )
            # Released only once it has found the row locked and backed off twice.
            await until(lambda: nowait.counters["retries"] >= 2 or attempt.done(), "two retries on the held row")
            assert not attempt.done()
        order = await attempt
        assert order.quantity == 1
        assert nowait.counters["retries"] == nowait.counters["lock_not_available"] >= 2
        assert nowait.counters["busy"] == 0


class Competed:
    """Makes another connection commit an order for `rival` right after the strategy's first read."""

    def __init__(self, other, rival, sale_id) -> None:
        self.other, self.rival, self.sale_id, self.reads = other, rival, sale_id, 0

    async def after_read(self) -> None:
        self.reads += 1
        if self.reads == 1:
            await pessimistic_order(self.other, PlaceOrder(user_id=self.rival, flash_sale_id=self.sale_id))


def competed(cls, race: Competed, **params):
    class Raced(cls):
        async def read(self, conn, command):
            seen = await super().read(conn, command)
            await race.after_read()
            return seen

    return Raced(**params)


@pytest.mark.parametrize(
    ("cls", "failures"), [(Optimistic, "version_conflicts"), (Serializable, "serialization_failures")]
)
class TestReadThenWrite:
    async def test_an_order_committed_between_read_and_write_causes_one_retry(
        self, cls, failures, conn, other, make_scenario
    ):
        made = await make_scenario(inventory=5)
        buyer, rival = await two_users(conn)
        race = Competed(other, rival, made.flash_sale_id)
        strategy = competed(cls, race, **FAST)
        order = await strategy.create_order(conn, PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id))

        assert order.user_id == buyer
        assert race.reads == 2  # the first attempt's read, then the retry's
        assert dict(strategy.counters) == {failures: 1, "retries": 1}
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 3)

    async def test_without_retries_the_conflict_answers_busy(self, cls, failures, conn, other, make_scenario):
        made = await make_scenario(inventory=5)
        buyer, rival = await two_users(conn)
        strategy = competed(cls, Competed(other, rival, made.flash_sale_id), retries=0, **FAST)
        with pytest.raises(Busy):
            await strategy.create_order(conn, PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id))

        assert dict(strategy.counters) == {failures: 1, "busy": 1}
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 4)  # only the rival's order


@pytest.mark.parametrize("name", ["atomic", "sharded"])
async def test_the_per_user_lock_makes_a_concurrent_order_of_the_same_user_count(
    name, make_strategy, conn, other, watcher, make_scenario
):
    """A single statement checks the limit against the orders committed when it starts. The per-(sale, user)
    lock makes it start only after the same user's other order has committed, so it sees that order."""
    made = await make_scenario(inventory=10, per_user_limit=1)
    buyer, somebody = await two_users(conn)
    strategy = make_strategy(name)
    await strategy.create_order(conn, PlaceOrder(user_id=somebody, flash_sale_id=made.flash_sale_id))  # fills shards
    command = PlaceOrder(user_id=buyer, flash_sale_id=made.flash_sale_id)

    async with other.transaction():  # the same user's first order, by the same statements, not yet committed
        await locks.lock_buyer(other, made.flash_sale_id, buyer)
        taking = (
            placements.send_take_stock(other, command)
            if name == "atomic"
            else placements.send_take_shard(other, command, skip_locked=True)
        )
        assert await (await taking).one() is not None
        second = asyncio.create_task(strategy.create_order(conn, command))
        await until_lock_waiters(watcher, 1)  # it queues on the user's lock
        assert not second.done()
    with pytest.raises(PerUserLimitExceeded):
        await second
    audit = await audit_sale(conn, made.flash_sale_id)
    assert audit.ok, audit.problems()
    assert (audit.orders, audit.limit_violations) == (2, 0)
