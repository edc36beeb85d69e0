"""Every strategy checks the sale window against the clock it is given, not against the database's or the machine's
time: an injected clock before the window or after it is refused with `sale_not_active`, one inside it is served."""

from datetime import timedelta

import pytest

from flashsale import strategies
from flashsale.domain import PlaceOrder, SaleNotActive
from flashsale.repositories import orders, users
from flashsale.services.audit import audit_sale


@pytest.fixture(params=strategies.names())
def name(request):
    return request.param


def fixed(at):
    return lambda: at


class TestInjectedClock:
    @pytest.mark.parametrize("offset", [timedelta(hours=-1), timedelta(hours=2)], ids=["before", "after"])
    async def test_a_clock_outside_the_window_is_refused_as_sale_not_active(
        self, name, offset, make_strategy, make_scenario, pool, conn
    ):
        made = await make_scenario(inventory=5, window=timedelta(hours=1))
        strategy = make_strategy(name, clock=fixed(made.starts_at + offset))
        await strategy.start(pool)
        user_id = (await users.list_ids(conn, limit=1))[0]
        with pytest.raises(SaleNotActive) as refused:
            await strategy.place_order(pool, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
        assert refused.value.code == "sale_not_active"
        assert await orders.list_for_sale(conn, made.flash_sale_id) == []
        assert (await audit_sale(conn, made.flash_sale_id)).remaining == 5

    async def test_a_clock_inside_a_window_that_has_not_opened_yet_is_served(
        self, name, make_strategy, make_scenario, pool, conn
    ):
        made = await make_scenario(inventory=5, window=timedelta(hours=1), starts_in=timedelta(days=1))
        strategy = make_strategy(name, clock=fixed(made.starts_at + timedelta(minutes=1)))
        await strategy.start(pool)
        user_id = (await users.list_ids(conn, limit=1))[0]
        order = await strategy.place_order(pool, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
        assert await orders.list_for_sale(conn, made.flash_sale_id) == [order]
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
