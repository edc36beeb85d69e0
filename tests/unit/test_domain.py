import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from flashsale.domain import (
    DomainError,
    FlashSale,
    InvalidIdempotencyKey,
    InvalidQuantity,
    Order,
    OrderStatus,
    PerUserLimitExceeded,
    PlaceOrder,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def a_sale(*, remaining=50, total=50, limit=1, starts=NOW - timedelta(minutes=1), ends=NOW + timedelta(hours=1)):
    return FlashSale(
        id=uuid4(),
        product_id=uuid4(),
        starts_at=starts,
        ends_at=ends,
        total_inventory=total,
        remaining_inventory=remaining,
        per_user_limit=limit,
    )


class TestFlashSaleWindow:
    """A sale is active from its start (inclusive) to its end (exclusive)."""

    def test_active_inside_the_window(self):
        assert a_sale().is_active(NOW)

    def test_active_at_the_first_instant(self):
        assert a_sale(starts=NOW).is_active(NOW)

    def test_not_active_at_the_end(self):
        assert not a_sale(ends=NOW).is_active(NOW)

    def test_not_active_before_the_start(self):
        assert not a_sale(starts=NOW + timedelta(seconds=1)).is_active(NOW)


class TestCheckOrder:
    """check_order raises the error that forbids the order, in a fixed order of precedence."""

    def test_allows_an_order_within_stock_and_limit(self):
        a_sale(remaining=3, limit=2).check_order(quantity=2, already_bought=0, now=NOW)

    def test_sold_out_when_stock_is_short(self):
        with pytest.raises(SoldOut, match="1 left, 2 requested"):
            a_sale(remaining=1, limit=5).check_order(quantity=2, already_bought=0, now=NOW)

    def test_limit_counts_what_the_user_already_holds(self):
        with pytest.raises(PerUserLimitExceeded):
            a_sale(limit=2).check_order(quantity=1, already_bought=2, now=NOW)

    def test_inactive_sale_is_reported_before_stock(self):
        with pytest.raises(SaleNotActive):
            a_sale(remaining=0, ends=NOW).check_order(quantity=1, already_bought=0, now=NOW)

    def test_sold_count(self):
        assert a_sale(remaining=20, total=50).sold == 30


class TestPlaceOrder:
    """The command refuses quantities that no order may have."""

    @pytest.mark.parametrize("quantity", [0, -1, 2**31, True, 1.5, "1"])
    def test_rejects_invalid_quantities(self, quantity):
        with pytest.raises(InvalidQuantity):
            PlaceOrder(user_id=uuid4(), flash_sale_id=uuid4(), quantity=quantity)

    def test_accepts_the_largest_integer_column_value(self):
        assert PlaceOrder(user_id=uuid4(), flash_sale_id=uuid4(), quantity=2**31 - 1).quantity == 2**31 - 1

    @pytest.mark.parametrize("key", ["a", "order-42/retry:1", "~" * 255])
    def test_accepts_idempotency_keys_of_visible_ascii(self, key):
        assert PlaceOrder(user_id=uuid4(), flash_sale_id=uuid4(), idempotency_key=key).idempotency_key == key

    @pytest.mark.parametrize("key", ["", "a b", "x" * 256, "café", "line\nbreak", 42])
    def test_rejects_other_idempotency_keys(self, key):
        with pytest.raises(InvalidIdempotencyKey):
            PlaceOrder(user_id=uuid4(), flash_sale_id=uuid4(), idempotency_key=key)

    def test_knows_whether_an_order_answers_it(self):
        command = PlaceOrder(user_id=uuid4(), flash_sale_id=uuid4(), quantity=2, idempotency_key="k")
        order = Order(uuid4(), command.user_id, command.flash_sale_id, 2, OrderStatus.CONFIRMED, datetime.now(UTC))
        assert command.same_request(order)
        assert not command.same_request(dataclasses.replace(order, quantity=1))
        assert not command.same_request(dataclasses.replace(order, user_id=uuid4()))


class TestErrorCodes:
    """Each domain error carries a stable machine-readable code."""

    def test_codes(self):
        assert {cls.code for cls in DomainError.__subclasses__()} == {
            "sale_not_found",
            "user_not_found",
            "sale_not_active",
            "sold_out",
            "per_user_limit_exceeded",
            "invalid_quantity",
            "invalid_idempotency_key",
            "idempotency_key_reused",
        }
        assert SaleNotFound("x").code == "sale_not_found"
        assert UserNotFound("x").code == "user_not_found"


def test_domain_imports_nothing_from_the_database():
    import ast
    from pathlib import Path

    import flashsale.domain

    for path in Path(flashsale.domain.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("psycopg", "sqlalchemy", "flashsale.db", "flashsale.repositories")), (
                    f"{path.name} imports {name}"
                )
