"""Every outcome of the pessimistic order flow, each checked against the rows left in the database."""

from datetime import timedelta
from uuid import uuid4

import pytest

from flashsale.domain import (
    OrderStatus,
    PerUserLimitExceeded,
    PlaceOrder,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.repositories import flash_sales, orders, users
from flashsale.services.audit import audit_sale
from flashsale.strategies.pessimistic import create_order


async def first_user(conn):
    return (await users.list_ids(conn, limit=1))[0]


class TestPessimisticOrderFlow:
    async def test_creates_a_confirmed_order_and_decrements(self, conn, make_scenario):
        made = await make_scenario(inventory=5, per_user_limit=3)
        user_id = await first_user(conn)
        order = await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        assert order.status is OrderStatus.CONFIRMED
        assert (order.user_id, order.quantity) == (user_id, 2)
        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 3
        assert await orders.list_for_sale(conn, made.flash_sale_id) == [order]

    async def test_sold_out_leaves_everything_as_it_was(self, conn, make_scenario):
        made = await make_scenario(inventory=1, per_user_limit=5)
        user_id = await first_user(conn)
        with pytest.raises(SoldOut):
            await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 1
        assert await orders.list_for_sale(conn, made.flash_sale_id) == []

    async def test_per_user_limit_counts_earlier_orders(self, conn, make_scenario):
        made = await make_scenario(inventory=10, per_user_limit=2)
        user_id = await first_user(conn)
        await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        with pytest.raises(PerUserLimitExceeded):
            await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=1))
        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 8

    async def test_sale_not_yet_open(self, conn, make_scenario):
        made = await make_scenario(starts_in=timedelta(hours=1))
        with pytest.raises(SaleNotActive):
            await create_order(conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=made.flash_sale_id))

    async def test_sale_already_closed(self, conn, make_scenario):
        made = await make_scenario(starts_in=-timedelta(hours=2), window=timedelta(hours=1))
        with pytest.raises(SaleNotActive):
            await create_order(conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=made.flash_sale_id))

    async def test_unknown_sale(self, conn, make_scenario):
        await make_scenario()
        with pytest.raises(SaleNotFound):
            await create_order(conn, PlaceOrder(user_id=await first_user(conn), flash_sale_id=uuid4()))

    async def test_unknown_user_rolls_back_the_decrement(self, conn, make_scenario):
        made = await make_scenario(inventory=5)
        with pytest.raises(UserNotFound):
            await create_order(conn, PlaceOrder(user_id=uuid4(), flash_sale_id=made.flash_sale_id))
        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 5
        assert (await audit_sale(conn, made.flash_sale_id)).ok

    async def test_connection_is_usable_after_a_refusal(self, conn, make_scenario):
        made = await make_scenario(inventory=1)
        user_id = await first_user(conn)
        with pytest.raises(SoldOut):
            await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=2))
        order = await create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
        assert order.quantity == 1


class TestAudit:
    """The audit reads the truth from the database and catches an oversell injected behind the code's back."""

    async def test_clean_sale(self, conn, make_scenario):
        made = await make_scenario(inventory=3)
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok
        assert (audit.total, audit.remaining, audit.orders, audit.oversold) == (3, 3, 0, 0)

    async def test_catches_injected_oversell_and_limit_violation(self, conn, make_scenario):
        made = await make_scenario(inventory=1, per_user_limit=1)
        user_id = await first_user(conn)
        for _ in range(2):  # two units sold of one, to the same user, and the row never decremented
            await orders.insert(
                conn, user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=1, status=OrderStatus.CONFIRMED
            )
        audit = await audit_sale(conn, made.flash_sale_id)
        assert not audit.ok
        assert audit.oversold == 1
        assert audit.inventory_mismatch == 2
        assert audit.limit_violations == 1
        assert any("OVERSOLD" in p for p in audit.problems())

    async def test_unknown_sale(self, conn, make_scenario):
        await make_scenario()
        with pytest.raises(SaleNotFound):
            await audit_sale(conn, uuid4())
