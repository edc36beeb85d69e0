"""Repositories read rows into *Record types and hand back domain objects; they never commit."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from flashsale.domain import FlashSale, Order, OrderStatus, User
from flashsale.repositories import flash_sales, orders, products, users


class TestRoundTrips:
    async def test_user(self, conn, make_scenario):
        await make_scenario(users=3)
        made = await users.insert(conn, "ada")
        assert isinstance(made, User)
        assert await users.get(conn, made.id) == made
        assert await users.count(conn) == 4
        assert await users.get(conn, uuid4()) is None

    async def test_list_ids_pages_in_a_stable_order(self, conn, make_scenario):
        await make_scenario(users=25)
        first, second = await users.list_ids(conn, limit=10), await users.list_ids(conn, limit=10, offset=10)
        everyone = await users.list_ids(conn, limit=100)
        assert len(everyone) == 25
        assert first + second == everyone[:20]

    async def test_flash_sale_and_order(self, conn, make_scenario):
        await make_scenario(users=1)
        product = await products.insert(conn, name="Phone", price_cents=1000)
        assert (await products.get(conn, product.id)) == product
        start = datetime.now(UTC)
        sale = await flash_sales.insert(
            conn,
            product_id=product.id,
            starts_at=start,
            ends_at=start + timedelta(minutes=5),
            inventory=7,
            per_user_limit=2,
        )
        assert isinstance(sale, FlashSale)
        assert (sale.total_inventory, sale.remaining_inventory, sale.per_user_limit) == (7, 7, 2)
        assert await flash_sales.get(conn, sale.id) == sale

        user_id = (await users.list_ids(conn, limit=1))[0]
        order = await orders.insert(
            conn, user_id=user_id, flash_sale_id=sale.id, quantity=2, status=OrderStatus.CONFIRMED
        )
        assert isinstance(order, Order)
        assert order.status is OrderStatus.CONFIRMED
        assert await orders.get(conn, order.id) == order
        assert await orders.confirmed_quantity(conn, user_id=user_id, flash_sale_id=sale.id) == 2
        assert await orders.list_for_sale(conn, sale.id) == [order]

    async def test_decrement_changes_only_remaining(self, conn, make_scenario):
        made = await make_scenario(inventory=10)
        await flash_sales.decrement_remaining(conn, made.flash_sale_id, 3)
        sale = await flash_sales.get(conn, made.flash_sale_id)
        assert (sale.total_inventory, sale.remaining_inventory) == (10, 7)

    async def test_repositories_do_not_commit(self, conn, database_url, make_scenario):
        made = await make_scenario(inventory=10)
        try:
            async with conn.transaction():
                await flash_sales.decrement_remaining(conn, made.flash_sale_id, 4)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 10


class TestSchemaConstraints:
    """The CHECKs of the seed's schema hold even if code forgets them."""

    async def test_remaining_cannot_go_negative(self, conn, make_scenario):
        import psycopg
        import pytest

        made = await make_scenario(inventory=1)
        with pytest.raises(psycopg.errors.CheckViolation):
            await flash_sales.decrement_remaining(conn, made.flash_sale_id, 2)

    async def test_window_must_be_ordered(self, conn, make_scenario):
        import psycopg
        import pytest

        made = await make_scenario()
        start = datetime.now(UTC)
        with pytest.raises(psycopg.errors.CheckViolation):
            await flash_sales.insert(
                conn, product_id=made.product_id, starts_at=start, ends_at=start, inventory=1, per_user_limit=1
            )

    async def test_quantity_must_be_positive(self, conn, make_scenario):
        import psycopg
        import pytest

        made = await make_scenario()
        user_id = (await users.list_ids(conn, limit=1))[0]
        with pytest.raises(psycopg.errors.CheckViolation):
            await orders.insert(
                conn, user_id=user_id, flash_sale_id=made.flash_sale_id, quantity=0, status=OrderStatus.PENDING
            )


class TestBatchHoldingsPlan:
    """The batch's read of its users' units stays one index lookup per user when the statistics lag the orders
    table (a sale's first seconds, right after the scenario's TRUNCATE): it never reads every order of the sale."""

    async def test_one_index_lookup_per_user_at_any_size(self, conn, make_scenario):
        made = await make_scenario(users=200, inventory=10_000_000, per_user_limit=10_000_000)
        await conn.execute(
            "INSERT INTO orders (user_id, flash_sale_id, quantity, status)"
            " SELECT u.id, %s, 1, 'CONFIRMED' FROM users u, generate_series(1, 150)",
            [made.flash_sale_id],
        )  # 30,000 orders the statistics have not seen yet
        batch = [row[0] for row in await (await conn.execute("SELECT id FROM users LIMIT 100")).fetchall()]
        plan = await (
            await conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + orders.BOUGHT_BY_USERS, [made.flash_sale_id, batch])
        ).fetchone()
        scans = list(_nodes(plan[0][0]["Plan"], "orders"))
        assert scans, "the plan reads orders somewhere"
        for node in scans:
            assert node["Actual Loops"] == 100  # once per user of the batch
            assert node["Actual Rows"] <= 150  # that user's orders, never the sale's 30,000
        assert (
            sum(units for _, units in await (await orders.send_bought_by_users(conn, made.flash_sale_id, batch)).all())
            == 100 * 150
        )


def _nodes(node: dict, relation: str):
    """Every plan node that scans `relation`."""
    if node.get("Relation Name") == relation:
        yield node
    for child in node.get("Plans", []):
        yield from _nodes(child, relation)
