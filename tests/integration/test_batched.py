"""Admission control and batching: a full queue refuses at once, batches form under load, every caller gets its
own outcome, a failed batch fails only its callers, and stopping answers whoever still waits."""

import asyncio

import pytest

from flashsale.db import connection
from flashsale.domain import IdempotencyKeyTaken, PlaceOrder
from flashsale.repositories import flash_sales, users
from flashsale.services.audit import audit_sale
from flashsale.services.crowd import buy_concurrently, crowd_commands
from flashsale.strategies import Batched, Rejected
from tests.waiting import HANG_S, until, until_lock_waiters


@pytest.fixture
async def other(database_url):
    c = await connection.connect_async(database_url)
    async with c:
        yield c


async def until_someone_waits_for_a_lock(conn):
    """Poll until a session (the worker's batch) queues on a row lock."""
    await until_lock_waiters(conn, 1)


async def until_queued(batched, count):
    """Until `count` orders wait in the strategy's queue (their callers' tasks have run up to it)."""
    await until(lambda: batched._queue.qsize() == count, f"{count} orders in the queue")


def place(strategy, pool, user_id, sale_id):
    return asyncio.create_task(strategy.place_order(pool, PlaceOrder(user_id=user_id, flash_sale_id=sale_id)))


class TestBatched:
    async def test_a_full_queue_rejects_at_once(self, make_strategy, conn, other, pool, make_scenario):
        made = await make_scenario(users=4, inventory=10)
        u = await users.list_ids(conn, limit=4)
        batched = make_strategy("batched", batch_size=1, queue_size=2, retry_after_s=2.5)
        await batched.start(pool)
        async with other.transaction():
            await flash_sales.get_for_update(other, made.flash_sale_id)  # the worker's first batch will queue on it
            first = place(batched, pool, u[0], made.flash_sale_id)
            await until_someone_waits_for_a_lock(conn)  # the worker took it and its batch waits on the lock
            queued = [place(batched, pool, u[1], made.flash_sale_id), place(batched, pool, u[2], made.flash_sale_id)]
            await until_queued(batched, 2)
            # Refused without awaiting anything: were it queued, it would wait for the lock held here.
            with pytest.raises(Rejected) as rejected:
                batched.place_order(pool, PlaceOrder(user_id=u[3], flash_sale_id=made.flash_sale_id)).send(None)
            assert rejected.value.code == "rejected"
            assert rejected.value.retry_after_s == 2.5
        placed = await asyncio.gather(first, *queued)
        assert [order.user_id for order in placed] == u[:3]
        assert batched.counters["rejected"] == 1
        assert (await audit_sale(conn, made.flash_sale_id)).orders == 3

    async def test_concurrent_callers_are_settled_together(self, make_strategy, conn, pool, make_scenario):
        made = await make_scenario(users=64, inventory=1000)
        user_ids = await users.list_ids(conn, limit=64)
        batched = make_strategy("batched")
        result = await buy_concurrently(pool, batched, crowd_commands(user_ids, made.flash_sale_id, buyers=64))
        assert result.outcomes["created"] == 64
        assert batched.counters["batched_orders"] == 64
        assert batched.counters["batches"] <= 4  # 64 orders in one transaction per handful, not one each

    async def test_each_caller_gets_its_own_outcome_from_one_batch(self, make_strategy, conn, pool, make_scenario):
        made = await make_scenario(users=3, inventory=3, per_user_limit=2)
        a, b, c = await users.list_ids(conn, limit=3)
        batched = make_strategy("batched")
        commands = [
            PlaceOrder(user_id=a, flash_sale_id=made.flash_sale_id, quantity=2),
            PlaceOrder(user_id=a, flash_sale_id=made.flash_sale_id),  # a would hold 3 > 2
            PlaceOrder(user_id=b, flash_sale_id=made.flash_sale_id, quantity=2),  # 1 left
            PlaceOrder(user_id=c, flash_sale_id=made.flash_sale_id),  # the last unit
        ]
        result = await buy_concurrently(pool, batched, commands)
        assert [r if isinstance(r, str) else "created" for r in result.results] == [
            "created",
            "per_user_limit_exceeded",
            "sold_out",
            "created",
        ]
        assert batched.counters["batches"] == 1
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 0)

    async def test_a_failed_batch_fails_its_callers_and_the_worker_goes_on(self, conn, pool, make_scenario):
        class Flaky(Batched):
            failures = 1

            async def settle(self, conn, commands):
                if self.failures:
                    self.failures -= 1
                    raise RuntimeError("database went away")
                return await super().settle(conn, commands)

        made = await make_scenario(users=2, inventory=5)
        a, b = await users.list_ids(conn, limit=2)
        flaky = Flaky()
        try:
            with pytest.raises(RuntimeError, match="went away"):
                await flaky.place_order(pool, PlaceOrder(user_id=a, flash_sale_id=made.flash_sale_id))
            order = await flaky.place_order(pool, PlaceOrder(user_id=b, flash_sale_id=made.flash_sale_id))
            assert order.user_id == b
        finally:
            await flaky.stop()

    async def test_stop_rejects_the_waiting_and_lets_the_batch_in_flight_finish(
        self, make_strategy, conn, other, pool, make_scenario
    ):
        made = await make_scenario(users=3, inventory=10)
        u = await users.list_ids(conn, limit=3)
        batched = make_strategy("batched", batch_size=1)
        await batched.start(pool)
        async with other.transaction():
            await flash_sales.get_for_update(other, made.flash_sale_id)
            in_flight = place(batched, pool, u[0], made.flash_sale_id)
            await until_someone_waits_for_a_lock(conn)
            waiting = [place(batched, pool, u[1], made.flash_sale_id), place(batched, pool, u[2], made.flash_sale_id)]
            await until_queued(batched, 2)
            stopping = asyncio.create_task(batched.stop())
            for caller in waiting:
                with pytest.raises(Rejected):
                    async with asyncio.timeout(HANG_S):  # answered while the batch in flight still waits
                        await caller
            assert not stopping.done()  # the batch in flight still waits for the lock
        assert (await in_flight).user_id == u[0]
        await stopping
        assert (await audit_sale(conn, made.flash_sale_id)).orders == 1


class TestAKeyTakenBehindTheBatchsBack:
    async def test_the_batch_is_settled_again_and_its_other_orders_placed(
        self, make_strategy, conn, other, pool, make_scenario
    ):
        """Another transaction, on another sale, inserts an order with a key of the batch and commits only once the
        batch's INSERT waits on that key: the batch read its keys before, so its INSERT breaks the unique
        constraint. Settled again, the keyed order finds its key taken and the other order of the batch goes
        through (without the second settle it would have failed with the whole batch)."""
        made = await make_scenario(users=2, inventory=10, per_user_limit=5)
        a, b = await users.list_ids(conn, limit=2)
        cur = await conn.execute(
            "INSERT INTO flash_sales SELECT * FROM json_populate_record(NULL::flash_sales, (SELECT to_json(s)::jsonb"
            " || jsonb_build_object('id', gen_random_uuid()) FROM flash_sales s WHERE id = %s)::json) RETURNING id",
            [made.flash_sale_id],
        )
        (elsewhere,) = await cur.fetchone()
        batched = make_strategy("batched")
        keyed = PlaceOrder(user_id=a, flash_sale_id=made.flash_sale_id, idempotency_key="behind-its-back")
        async with other.transaction():
            await other.execute(
                "INSERT INTO orders (user_id, flash_sale_id, quantity, status, idempotency_key)"
                " VALUES (%s, %s, 1, 'CONFIRMED', %s)",
                [a, elsewhere, keyed.idempotency_key],
            )
            # Both tickets are queued before the worker (started by the first) runs: one batch.
            first = asyncio.create_task(batched.place_order(pool, keyed))
            second = place(batched, pool, b, made.flash_sale_id)
            await until_lock_waiters(conn, 1)  # the batch's INSERT waits for this transaction's key
        with pytest.raises(IdempotencyKeyTaken):
            await first
        assert (await second).user_id == b
        assert batched.counters["batches"] == 1  # the settle that broke counts nothing; the second does
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 9)
