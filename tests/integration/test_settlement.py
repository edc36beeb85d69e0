"""Asynchronous orders' settlement on the real database, through every safe strategy: a pending order is settled
once however many settlers race for it, a settlement cut short after the strategy committed is completed without
taking stock twice, refusals end FAILED with their reason, and the audit agrees."""

from __future__ import annotations

import asyncio

import pytest

from flashsale import idempotency, settlement, strategies
from flashsale.audit import audit_sale
from flashsale.domain import IdempotencyKeyReused, OrderStatus, PlaceOrder
from flashsale.repositories import orders, users

SAFE = strategies.names(safe=True)


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


class TestSettle:
    async def test_racing_settlers_settle_a_pending_order_once(self, strategy, pool, conn, make_scenario):
        scenario = await make_scenario(users=5, inventory=10, per_user_limit=10)
        pending = await accept(pool, scenario.flash_sale_id, await first_user(conn), quantity=3)
        assert pending.status is OrderStatus.PENDING

        results = await asyncio.gather(*(settlement.settle(strategy, pool, pending.id) for _ in range(8)))

        settled = [r for r in results if r is not None]
        assert len(settled) >= 1
        assert {(r.id, r.status) for r in settled} == {(pending.id, OrderStatus.CONFIRMED)}
        assert await settlement.settle(strategy, pool, pending.id) is None  # nothing left to settle
        audit = await audit_sale(conn, scenario.flash_sale_id, accepted=[pending.id])
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining, audit.pending) == (1, 7, 0)

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
