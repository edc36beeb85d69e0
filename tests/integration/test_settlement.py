"""Asynchronous orders' settlement on the real database, through every safe strategy: a pending order is settled
once however many settlers race for it (also while one of them holds its claim), a settlement cut short after the
strategy committed is completed without taking stock twice, refusals end FAILED with their reason, and the audit
agrees. `Settler` with a real order queue: an order the full queue could not take, the sweep's age rule, orders
held by the process scheduled once, and a settlement that failed left pending for the next sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from flashsale import strategies
from flashsale.admission import OrderQueue
from flashsale.domain import IdempotencyKeyReused, OrderStatus, PlaceOrder
from flashsale.repositories import orders, settlements, users
from flashsale.services import idempotency, settlement
from flashsale.services.audit import audit_sale
from flashsale.services.settlement import Settler
from tests.waiting import HANG_S, until, until_async

SAFE = strategies.names(safe=True)
RACERS = 8  # settlers racing for one order, each on its own pooled connection


@pytest.fixture(params=SAFE)
async def strategy(request, make_strategy, pool):
    made = make_strategy(request.param, patient=True)
    await made.start(pool)
    return made


async def accept(pool, sale_id, user_id, quantity=1, key=None):
    command = PlaceOrder(user_id, sale_id, quantity, idempotency_key=key)
    return (await settlement.accept(pool, command)).order


async def first_user(conn):
    return (await users.list_ids(conn, limit=1))[0]


async def sale_rows(conn, sale_id) -> list[tuple]:
    """Every order row of the sale: (id, status, idempotency key)."""
    cur = await conn.execute(
        "SELECT id, status, idempotency_key FROM orders WHERE flash_sale_id = %s ORDER BY created_at", [sale_id]
    )
    return [(row[0], OrderStatus(row[1]), row[2]) for row in await cur.fetchall()]


async def check_settled_once(conn, sale_id, order_id) -> None:
    """The sale holds this one order, CONFIRMED, once (3 of its 10 units taken), and the audit agrees."""
    assert await sale_rows(conn, sale_id) == [(order_id, OrderStatus.CONFIRMED, None)]
    audit = await audit_sale(conn, sale_id, accepted=[order_id])
    assert audit.ok, audit.problems()
    assert (audit.orders, audit.remaining, audit.pending) == (1, 7, 0)


class FirstHeldInside:
    """The strategy, with the first settler that reaches it held there (after its claim, before it places anything)
    until `release` is set; the others pass straight through. `entered` counts the settlers that reached it."""

    def __init__(self, strategy) -> None:
        self.strategy, self.name = strategy, strategy.name
        self.entered = 0
        self.inside, self.release = asyncio.Event(), asyncio.Event()

    async def place_order(self, pool, command):
        self.entered += 1
        if self.entered == 1:
            self.inside.set()
            async with asyncio.timeout(HANG_S):
                await self.release.wait()
        return await self.strategy.place_order(pool, command)


async def settle_together(strategy, pool, order_id, count: int) -> list:
    """`count` settlements of one order released together by a barrier; what each returned (or raised)."""
    barrier = asyncio.Barrier(count)

    async def settler():
        await barrier.wait()
        return await settlement.settle(strategy, pool, order_id)

    results = await asyncio.gather(*(settler() for _ in range(count)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results


class TestSettle:
    async def test_racing_settlers_settle_a_pending_order_once(self, strategy, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn), quantity=3)
        assert pending.status is OrderStatus.PENDING

        results = await settle_together(strategy, pool, pending.id, RACERS)

        settled = [r for r in results if r is not None]
        assert [(r.id, r.status) for r in settled] == [(pending.id, OrderStatus.CONFIRMED)]  # one settlement
        assert await settlement.settle(strategy, pool, pending.id) is None  # nothing left to settle
        await check_settled_once(conn, scenario.flash_sale_id, pending.id)

    async def test_settlers_racing_a_held_claim_skip_it_and_the_order_is_settled_once(
        self, strategy, pool, conn, make_scenario
    ):
        """The first settler is held inside the strategy, its claim taken; the others come at that moment, each on
        its own connection, and must pass the order by; more come after the first committed and find it settled."""
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn), quantity=3)
        held = FirstHeldInside(strategy)
        first = asyncio.create_task(settlement.settle(held, pool, pending.id))
        try:
            async with asyncio.timeout(HANG_S):
                await held.inside.wait()

            during = await settle_together(held, pool, pending.id, RACERS)

            assert during == [None] * RACERS
            assert held.entered == 1  # none of them got past the claim
            assert (await settlements.get(conn, pending.id)).status is OrderStatus.PENDING  # passed by, not settled
        finally:
            held.release.set()
        settled = await first
        after = await settle_together(held, pool, pending.id, RACERS)

        outcomes = [o for o in (settled, *during, *after) if o is not None]
        assert [(o.id, o.status) for o in outcomes] == [(pending.id, OrderStatus.CONFIRMED)]
        assert held.entered == 1
        await check_settled_once(conn, scenario.flash_sale_id, pending.id)

    async def test_a_settlement_cut_short_after_the_strategy_committed_takes_the_stock_once(
        self, strategy, pool, conn, make_scenario
    ):
        """As if the service died between step 2 (the strategy's commit) and step 3 (the mark)."""
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn), quantity=2)
        key = settlement.settlement_key(pending.id)
        command = PlaceOrder(pending.user_id, pending.flash_sale_id, 2, idempotency_key=key)
        await idempotency.place_order(strategy, pool, command)
        half = await audit_sale(conn, scenario.flash_sale_id)
        assert (half.pending, half.settlement_leftovers, half.remaining, half.ok) == (1, 1, 8, False)

        settled = await settlement.settle(strategy, pool, pending.id)

        assert (settled.id, settled.status) == (pending.id, OrderStatus.CONFIRMED)
        assert await orders.get_by_idempotency_key(conn, key) is None
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[pending.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 8)  # the stock was taken once

    async def test_a_refused_order_fails_with_its_reason_and_takes_nothing(self, strategy, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=2, per_user_limit=10)
        user = await first_user(conn)
        first = await accept(pool, scenario.flash_sale_id, user, quantity=2)
        second = await accept(pool, scenario.flash_sale_id, user, quantity=1)

        assert (await settlement.settle(strategy, pool, first.id)).status is OrderStatus.CONFIRMED
        failed = await settlement.settle(strategy, pool, second.id)

        assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "sold_out")
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[first.id, second.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.failed, audit.remaining) == (1, 1, 0)


class TestAccept:
    async def test_a_key_is_answered_with_its_first_order_and_refused_for_another(self, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        first = await settlement.accept(pool, PlaceOrder(user, scenario.flash_sale_id, 1, idempotency_key="a-1"))
        again = await settlement.accept(pool, PlaceOrder(user, scenario.flash_sale_id, 1, idempotency_key="a-1"))

        assert (first.replayed, again.replayed, again.order.id) == (False, True, first.order.id)
        with pytest.raises(IdempotencyKeyReused):
            await settlement.accept(pool, PlaceOrder(user, scenario.flash_sale_id, 2, idempotency_key="a-1"))

    async def test_the_audit_fails_while_orders_are_pending(self, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn))
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[pending.id])
        assert (audit.ok, audit.pending, audit.accepted_unsettled) == (False, 1, 1)
        assert "1 orders are still pending" in audit.problems()


@contextlib.asynccontextmanager
async def running(queue: OrderQueue):
    await queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


async def hold_the_worker(queue: OrderQueue) -> asyncio.Event:
    """Give the queue's one worker a job that waits for the returned event: until it is set, whatever is queued
    stays queued, and the queue has all its room."""
    taken, release = asyncio.Event(), asyncio.Event()

    async def wait():
        taken.set()
        async with asyncio.timeout(HANG_S):
            await release.wait()

    queue.submit(wait)
    async with asyncio.timeout(HANG_S):
        await taken.wait()
    return release


async def drained(queue: OrderQueue) -> None:
    """Return once every job queued so far is done (one worker takes them in order)."""

    async def nothing():
        return None

    await until(lambda: queue.room > 0, "room in the order queue")
    await queue.run(nothing)


async def statuses(conn, *ids) -> list[OrderStatus]:
    return [(await settlements.get(conn, order_id)).status for order_id in ids]


async def until_settled(conn, ids) -> None:
    async def settled() -> bool:
        return OrderStatus.PENDING not in await statuses(conn, *ids)

    await until_async(settled, f"{len(ids)} orders to be settled")


@pytest.fixture
async def pessimistic(make_strategy, pool):
    made = make_strategy("pessimistic")
    await made.start(pool)
    return made


class TestSettler:
    """A real order queue of one worker in front of the settlement; the test holds the worker to fill the queue."""

    async def test_an_order_the_full_queue_could_not_take_is_settled_by_the_next_sweep(
        self, pessimistic, pool, conn, make_scenario
    ):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        first, second = [await accept(pool, scenario.flash_sale_id, user) for _ in range(2)]
        async with running(OrderQueue(1, 1)) as queue:
            settler = Settler(pessimistic, pool, queue)
            release = await hold_the_worker(queue)
            assert settler.schedule(first.id) is True
            assert settler.schedule(second.id) is False  # the queue's one place is taken
            release.set()
            await drained(queue)
            assert await statuses(conn, first.id, second.id) == [OrderStatus.CONFIRMED, OrderStatus.PENDING]

            assert await settler.sweep() == 1
            await drained(queue)

        assert await statuses(conn, first.id, second.id) == [OrderStatus.CONFIRMED] * 2
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[first.id, second.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 8)

    async def test_a_sweep_schedules_only_orders_older_than_its_age(self, pessimistic, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        old, fresh = [await accept(pool, scenario.flash_sale_id, user) for _ in range(2)]
        await conn.execute("UPDATE orders SET created_at = created_at - interval '1 hour' WHERE id = %s", [old.id])
        async with running(OrderQueue(10, 1)) as queue:
            settler = Settler(pessimistic, pool, queue)
            release = await hold_the_worker(queue)
            assert await settler.sweep(older_than_s=60) == 1
            assert queue.depth == 1
            release.set()
            await drained(queue)
            assert await statuses(conn, old.id, fresh.id) == [OrderStatus.CONFIRMED, OrderStatus.PENDING]

            assert await settler.sweep(older_than_s=0) == 1  # at start: everything pending
            await drained(queue)

        assert await statuses(conn, old.id, fresh.id) == [OrderStatus.CONFIRMED] * 2

    async def test_an_order_held_by_the_process_is_scheduled_once(self, pessimistic, pool, conn, make_scenario):
        """By the accepting request and by the sweep alike: one settlement job, however often it is asked for."""
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        held, other = [await accept(pool, scenario.flash_sale_id, user) for _ in range(2)]
        async with running(OrderQueue(10, 1)) as queue:
            settler = Settler(pessimistic, pool, queue)
            release = await hold_the_worker(queue)
            assert (settler.schedule(held.id), settler.schedule(held.id)) == (True, True)
            assert queue.depth == 1
            assert await settler.sweep() == 1  # only the other one
            assert queue.depth == 2
            release.set()
            await drained(queue)

        assert await statuses(conn, held.id, other.id) == [OrderStatus.CONFIRMED] * 2
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[held.id, other.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 8)

    async def test_a_failed_settlement_leaves_the_order_pending_for_the_next_sweep(
        self, make_strategy, pool, conn, make_scenario, caplog
    ):
        """The sale row is locked by the test and the strategy gives up at once (NOWAIT, no retry): not a refusal
        of the sale, so the order must stay PENDING, untouched, and be settled by the next sweep."""
        strategy = make_strategy("pessimistic_nowait", retries=0)
        await strategy.start(pool)
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn))
        async with running(OrderQueue(10, 1)) as queue:
            settler = Settler(strategy, pool, queue)
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [scenario.flash_sale_id])
                with caplog.at_level(logging.WARNING, logger="flashsale.services.settlement"):
                    assert settler.schedule(pending.id) is True
                    await drained(queue)
            assert strategy.counters["busy"] == 1
            assert [r.getMessage() for r in caplog.records] == ["settlement postponed"]
            assert await statuses(conn, pending.id) == [OrderStatus.PENDING]
            assert await sale_rows(conn, scenario.flash_sale_id) == [(pending.id, OrderStatus.PENDING, None)]

            assert await settler.sweep() == 1
            await drained(queue)

        assert await statuses(conn, pending.id) == [OrderStatus.CONFIRMED]
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[pending.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 9)


class TestSettlerRunning:
    async def test_the_start_s_sweep_settles_every_pending_order_however_young(
        self, pessimistic, pool, conn, make_scenario
    ):
        """Orders left pending before the start (a previous run's) are settled at once: the next sweep is an hour
        away."""
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        ids = [(await accept(pool, scenario.flash_sale_id, user)).id for _ in range(3)]
        async with running(OrderQueue(10, 2)) as queue:
            settler = Settler(pessimistic, pool, queue, sweep_interval_s=3600)
            await settler.start()
            try:
                await until_settled(conn, ids)
            finally:
                await settler.stop()

        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=ids)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (3, 7)

    async def test_a_later_sweep_settles_an_order_nobody_scheduled(self, pessimistic, pool, conn, make_scenario):
        """As an order accepted while the queue was full: once the start's sweep is over (its order settled), only
        a later sweep can find it."""
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        user = await first_user(conn)
        earlier = await accept(pool, scenario.flash_sale_id, user)
        async with running(OrderQueue(10, 1)) as queue:
            settler = Settler(pessimistic, pool, queue, sweep_interval_s=0.05)
            await settler.start()
            try:
                await until_settled(conn, [earlier.id])
                later = await accept(pool, scenario.flash_sale_id, user)
                await until_settled(conn, [later.id])
            finally:
                await settler.stop()

        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[earlier.id, later.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (2, 8)
