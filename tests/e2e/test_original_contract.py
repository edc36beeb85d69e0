"""The original's HTTP contract beside ours, on the real server: `GET /users` as a JSON array, `POST /orders`,
`order_id` in order bodies, `GET /orders/{order_id}/status`; and the paged ids at `GET /api/users`."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

from tests.e2e.conftest import count_orders, make_sale


class TestUserList:
    def test_lists_every_user_as_an_array_of_id_and_created_at(self, api, database_url):
        sale = make_sale(database_url, users=1500)  # more than the paged route's largest page
        reply = api.get("/users")

        assert (reply.status, reply.header("content-type")) == (200, "application/json")
        users = reply.json
        assert isinstance(users, list)
        assert {tuple(sorted(user)) for user in users} == {("created_at", "id")}
        assert [uuid.UUID(user["id"]) for user in users] == sale.user_ids  # every user, once, in id order
        assert all(datetime.fromisoformat(user["created_at"]).tzinfo is not None for user in users)

    def test_limit_and_offset_page_it_still_as_an_array(self, api, database_url):
        sale = make_sale(database_url, users=25)
        pages = [api.get(f"/users?limit=10&offset={offset}").json for offset in (0, 10, 20, 30)]

        assert [len(page) for page in pages] == [10, 10, 5, 0]
        assert [uuid.UUID(user["id"]) for page in pages for user in page] == sale.user_ids
        assert [uuid.UUID(u["id"]) for u in api.get("/users?offset=20").json] == sale.user_ids[20:]

    def test_bad_paging_is_422(self, api, sale):
        for query in ("limit=0", "limit=1001", "offset=-1", "limit=x"):
            reply = api.get(f"/users?{query}")
            assert (reply.status, reply.json["error"]) == (422, "invalid_request"), query


class TestUserIdsPage:
    def test_api_users_keeps_the_paged_object(self, api, database_url):
        sale = make_sale(database_url, users=12)
        page = api.get("/api/users?limit=5&offset=10").json
        assert page == {"user_ids": [str(u) for u in sale.user_ids[10:]], "total": 12, "limit": 5, "offset": 10}


class TestOriginalOrderRoute:
    def test_post_orders_places_the_order_as_post_api_orders_does(self, api, sale, database_url):
        body = {"user_id": str(sale.user_ids[0]), "flash_sale_id": str(sale.id), "quantity": 1}
        reply = api.post("/orders", json_body=body)

        assert reply.status == 201
        order = reply.json
        assert (order["order_id"], order["status"]) == (order["id"], "CONFIRMED")
        assert reply.header("location") == f"/api/orders/{order['id']}"
        assert api.get(f"/api/orders/{order['id']}").json == order
        assert count_orders(database_url) == 1

    def test_refusals_and_idempotency_keys_work_there_too(self, api, sale):
        body = {"user_id": str(sale.user_ids[0]), "flash_sale_id": str(sale.id), "quantity": 2}
        first = api.post("/orders", json_body=body, headers={"Idempotency-Key": "original-1"})
        again = api.post("/orders", json_body=body, headers={"Idempotency-Key": "original-1"})
        over = api.post("/orders", json_body=body)

        assert (first.status, again.status, again.header("idempotent-replayed")) == (201, 201, "true")
        assert again.json == first.json
        assert (over.status, over.json["error"]) == (409, "per_user_limit_exceeded")


class TestOrderStatus:
    def test_a_confirmed_order_is_completed_with_the_order(self, api, sale):
        order = api.order(sale.user_ids[0], sale.id).json
        reply = api.get(f"/orders/{order['id']}/status")

        assert reply.status == 200
        assert reply.json == {"order_id": order["id"], "status": "completed", "order": order, "reason": None}

    def test_a_pending_order_is_pending(self, api, sale, database_url):
        with psycopg.connect(database_url) as conn:
            (order_id,) = conn.execute(
                "INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (%s, %s, 1, 'PENDING')"
                " RETURNING id",
                [sale.user_ids[0], sale.id],
            ).fetchone()
        reply = api.get(f"/orders/{order_id}/status")
        assert reply.json == {"order_id": str(order_id), "status": "pending", "order": None, "reason": None}

    def test_unknown_order_is_404_and_a_bad_id_422(self, api, sale):
        reply = api.get(f"/orders/{uuid.uuid4()}/status")
        assert (reply.status, reply.json["error"]) == (404, "order_not_found")
        reply = api.get("/orders/nope/status")
        assert (reply.status, reply.json["error"]) == (422, "invalid_request")
