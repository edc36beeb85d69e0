"""`POST /api/orders` and `GET /api/orders/{id}` on the real server: every outcome and its status."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import psycopg

from tests.e2e.conftest import count_orders, make_sale


def remaining(database_url, sale_id) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT remaining_inventory FROM flash_sales WHERE id = %s", [sale_id]).fetchone()[0]


class TestPlaceOrder:
    def test_created_order_is_confirmed_stored_and_readable(self, api, sale, database_url):
        """201 with the order, a Location to read it back, one row stored and the stock decremented."""
        user = sale.user_ids[0]
        reply = api.order(user, sale.id, quantity=2)

        assert reply.status == 201
        order = reply.json
        assert set(order) == {"id", "order_id", "user_id", "flash_sale_id", "quantity", "status", "created_at"}
        assert order["order_id"] == order["id"]  # the original's name for it
        assert (order["user_id"], order["flash_sale_id"]) == (str(user), str(sale.id))
        assert (order["quantity"], order["status"]) == (2, "CONFIRMED")
        assert datetime.fromisoformat(order["created_at"]).tzinfo is not None
        assert reply.header("content-type") == "application/json"
        assert reply.header("location") == f"/api/orders/{order['id']}"

        assert api.get(reply.header("location")).json == order
        assert count_orders(database_url) == 1
        assert remaining(database_url, sale.id) == sale.inventory - 2

    def test_sold_out_is_409_and_sells_nothing_more(self, api, database_url):
        sale = make_sale(database_url, users=3, inventory=2, per_user_limit=1)
        statuses = [api.order(user, sale.id).status for user in sale.user_ids[:2]]
        reply = api.order(sale.user_ids[2], sale.id)

        assert statuses == [201, 201]
        assert (reply.status, reply.json["error"]) == (409, "sold_out")
        assert "sold out" in reply.json["message"]
        assert count_orders(database_url) == 2
        assert remaining(database_url, sale.id) == 0

    def test_per_user_limit_is_409(self, api, sale, database_url):
        user = sale.user_ids[0]
        assert api.order(user, sale.id, quantity=2).status == 201
        reply = api.order(user, sale.id, quantity=1)

        assert (reply.status, reply.json["error"]) == (409, "per_user_limit_exceeded")
        assert count_orders(database_url) == 1

    def test_quantity_above_the_per_user_limit_is_409(self, api, sale, database_url):
        reply = api.order(sale.user_ids[0], sale.id, quantity=sale.per_user_limit + 1)

        assert (reply.status, reply.json["error"]) == (409, "per_user_limit_exceeded")
        assert count_orders(database_url) == 0

    def test_sale_not_yet_open_is_409(self, api, database_url):
        sale = make_sale(database_url, users=2, starts_in=timedelta(hours=1))
        reply = api.order(sale.user_ids[0], sale.id)

        assert (reply.status, reply.json["error"]) == (409, "sale_not_active")
        assert count_orders(database_url) == 0

    def test_unknown_sale_is_404(self, api, sale):
        missing = uuid.uuid4()
        reply = api.order(sale.user_ids[0], missing)

        assert (reply.status, reply.json["error"]) == (404, "sale_not_found")
        assert str(missing) in reply.json["message"]

    def test_unknown_user_is_404_and_leaves_the_stock(self, api, sale, database_url):
        reply = api.order(uuid.uuid4(), sale.id)

        assert (reply.status, reply.json["error"]) == (404, "user_not_found")
        assert remaining(database_url, sale.id) == sale.inventory


class TestGetOrder:
    def test_unknown_order_is_404(self, api, sale):
        reply = api.get(f"/api/orders/{uuid.uuid4()}")
        assert (reply.status, reply.json["error"]) == (404, "order_not_found")

    def test_id_that_is_not_a_uuid_is_422(self, api, sale):
        reply = api.get("/api/orders/42")
        assert (reply.status, reply.json["error"]) == (422, "invalid_request")
