"""`GET /api/users`, `GET /api/flash-sales/{id}`, `GET /health` and `GET /openapi.json` on the real server."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.e2e.conftest import POOL_SIZE, make_sale


class TestUsers:
    def test_pages_cover_every_user_once_in_a_stable_order(self, api, database_url):
        sale = make_sale(database_url, users=25)
        pages = [api.get(f"/api/users?limit=10&offset={offset}").json for offset in (0, 10, 20)]

        assert [len(p["user_ids"]) for p in pages] == [10, 10, 5]
        assert [(p["total"], p["limit"], p["offset"]) for p in pages] == [(25, 10, 0), (25, 10, 10), (25, 10, 20)]
        ids = [uuid.UUID(i) for p in pages for i in p["user_ids"]]
        assert ids == sale.user_ids  # every user, once, in id order
        assert api.get("/api/users?limit=10&offset=0").json == pages[0]

    def test_defaults_are_limit_100_offset_0(self, api, database_url):
        make_sale(database_url, users=150)
        page = api.get("/api/users").json
        assert (len(page["user_ids"]), page["total"], page["limit"], page["offset"]) == (100, 150, 100, 0)

    def test_offset_past_the_end_is_an_empty_page(self, api, sale):
        page = api.get("/api/users?offset=1000").json
        assert (page["user_ids"], page["total"]) == ([], len(sale.user_ids))

    def test_limit_1000_is_the_maximum(self, api, sale):
        assert api.get("/api/users?limit=1000").status == 200
        reply = api.get("/api/users?limit=1001")
        assert (reply.status, reply.json["error"]) == (422, "invalid_request")
        assert "limit" in reply.json["message"]

    @pytest.mark.parametrize(
        "query", ["limit=0", "limit=-1", "limit=ten", "limit=1.5", "offset=-1", "offset=x", "offset=2147483648"]
    )
    def test_bad_paging_is_422(self, api, query, sale):
        reply = api.get(f"/api/users?{query}")
        assert (reply.status, reply.json["error"]) == (422, "invalid_request")
        assert query.split("=")[0] in reply.json["message"]


class TestFlashSale:
    def test_reports_window_stock_limit_and_whether_it_is_open(self, api, sale):
        api.order(sale.user_ids[0], sale.id, quantity=2)
        reply = api.get(f"/api/flash-sales/{sale.id}")

        assert reply.status == 200
        body = reply.json
        assert set(body) == {
            "id",
            "product_id",
            "starts_at",
            "ends_at",
            "total_inventory",
            "remaining_inventory",
            "per_user_limit",
            "active",
        }
        assert body["id"] == str(sale.id)
        assert (body["total_inventory"], body["remaining_inventory"], body["per_user_limit"]) == (5, 3, 2)
        assert body["active"] is True
        assert datetime.fromisoformat(body["starts_at"]) < datetime.fromisoformat(body["ends_at"])

    def test_unknown_sale_is_404(self, api, sale):
        reply = api.get(f"/api/flash-sales/{uuid.uuid4()}")
        assert (reply.status, reply.json["error"]) == (404, "sale_not_found")

    def test_id_that_is_not_a_uuid_is_422(self, api, sale):
        reply = api.get("/api/flash-sales/not-a-uuid")
        assert (reply.status, reply.json["error"]) == (422, "invalid_request")
        assert "not a UUID" in reply.json["message"]


class TestHealth:
    def test_ok_with_the_database_strategy_and_pool(self, api):
        reply = api.get("/health")
        assert reply.status == 200
        body = reply.json
        assert (body["status"], body["database"], body["strategy"]) == ("ok", "ok", "pessimistic")
        assert body["admission"] == "local"
        assert body["pool"]["size"] == POOL_SIZE
        assert body["pool"]["waiting"] == 0


class TestOpenApi:
    def test_documents_every_route_from_the_models(self, api):
        doc = api.get("/openapi.json").json
        assert doc["openapi"].startswith("3.1")
        assert set(doc["paths"]) == {
            "/api/orders",
            "/api/orders/{order_id}",
            "/api/flash-sales/{flash_sale_id}",
            "/api/users",
            "/orders",
            "/orders/{order_id}/status",
            "/users",
            "/health",
            "/metrics",
        }
        request = doc["components"]["schemas"]["PlaceOrderRequest"]
        assert request["required"] == ["user_id", "flash_sale_id", "quantity"]
        assert request["additionalProperties"] is False
        assert (request["properties"]["quantity"]["minimum"], request["properties"]["quantity"]["maximum"]) == (
            1,
            2**31 - 1,
        )
        assert set(doc["paths"]["/api/orders"]["post"]["responses"]) == {
            "201",
            "202",
            "404",
            "409",
            "413",
            "415",
            "422",
            "429",
            "503",
        }
