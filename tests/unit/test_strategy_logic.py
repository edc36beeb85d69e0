"""The parts of the strategies that need no database: how a batch is judged, and how retries back off."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from flashsale.domain import FlashSale, PerUserLimitExceeded, PlaceOrder, SaleNotActive, SoldOut, UserNotFound
from flashsale.strategies.batched import decide, new_order_ids
from flashsale.strategies.retry import Backoff, check_retries

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def sale(remaining=10, limit=2):
    return FlashSale(
        id=uuid4(),
        product_id=uuid4(),
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        total_inventory=remaining,
        remaining_inventory=remaining,
        per_user_limit=limit,
    )


def orders_for(the_sale, *pairs):
    return [PlaceOrder(user_id=user, flash_sale_id=the_sale.id, quantity=quantity) for user, quantity in pairs]


class TestDecide:
    """A batch is judged as if its orders had locked the sale one after the other, in arrival order."""

    def test_accepted_orders_take_the_given_ids_in_turn(self):
        the_sale, a = sale(remaining=1, limit=3), uuid4()
        ids = new_order_ids(3)
        outcomes, accepted = decide(the_sale, orders_for(the_sale, (a, 2), (a, 1), (a, 1)), {a: 0}, now=NOW, ids=ids)
        assert isinstance(outcomes[0], SoldOut)
        assert outcomes[1] == ids[0]  # a refused order spends no id
        assert isinstance(outcomes[2], SoldOut)
        assert list(accepted) == [ids[0]]

    def test_accepted_units_count_against_the_orders_after_them(self):
        the_sale, a, b = sale(remaining=4, limit=3), uuid4(), uuid4()
        commands = orders_for(the_sale, (a, 3), (b, 2), (b, 1))
        outcomes, accepted = decide(the_sale, commands, {a: 0, b: 0}, now=NOW)
        assert isinstance(outcomes[0], UUID)
        assert isinstance(outcomes[1], SoldOut)  # 1 left after a's 3
        assert isinstance(outcomes[2], UUID)  # but a smaller order still fits
        assert [c.quantity for c in accepted.values()] == [3, 1]
        assert list(accepted) == [outcomes[0], outcomes[2]]

    def test_the_limit_counts_earlier_orders_and_earlier_ones_in_the_batch(self):
        the_sale, a = sale(limit=2), uuid4()
        outcomes, accepted = decide(the_sale, orders_for(the_sale, (a, 1), (a, 1)), {a: 1}, now=NOW)
        assert isinstance(outcomes[0], UUID)
        assert isinstance(outcomes[1], PerUserLimitExceeded)
        assert len(accepted) == 1

    def test_unknown_users_are_refused_after_the_sale_rules(self):
        the_sale, ghost = sale(remaining=1), uuid4()
        outcomes, _ = decide(the_sale, orders_for(the_sale, (ghost, 1), (ghost, 2)), {}, now=NOW)
        assert isinstance(outcomes[0], UserNotFound)
        assert isinstance(outcomes[1], SoldOut)  # as pessimistic: the stock is checked before the insert fails

    def test_a_closed_sale_refuses_everyone(self):
        the_sale, a = sale(), uuid4()
        outcomes, accepted = decide(the_sale, orders_for(the_sale, (a, 1)), {a: 0}, now=NOW + timedelta(hours=2))
        assert isinstance(outcomes[0], SaleNotActive)
        assert accepted == {}


class TestBackoff:
    def test_delays_stay_under_a_doubling_bound_and_the_cap(self):
        backoff = Backoff(base_s=0.001, cap_s=0.01)
        for retry in range(40):
            bound = min(0.01, 0.001 * 2**retry)
            assert all(0 <= backoff.delay(retry) <= bound for _ in range(50))

    def test_delays_are_jittered(self):
        assert len({Backoff(0.01, 1).delay(3) for _ in range(20)}) > 1

    def test_bad_values_are_refused(self):
        with pytest.raises(ValueError, match="backoff"):
            Backoff(-1, 1)
        for bad in (-1, 1.5, True, "3"):
            with pytest.raises(ValueError, match="retries"):
                check_retries(bad)


def test_new_order_ids_are_distinct_random_version_4_uuids():
    ids = new_order_ids(1000)
    assert len(set(ids)) == 1000
    assert {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {"specified in RFC 4122"}
    assert new_order_ids(0) == []
