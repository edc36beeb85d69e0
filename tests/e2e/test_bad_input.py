"""Bad input never reaches a 5xx: every malformed request is a 4xx with the JSON error, and orders nothing."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import count_orders

JSON = {"Content-Type": "application/json"}
MAX_BODY = 8 * 1024


def order_body(sale, **overrides) -> dict:
    body = {"user_id": str(sale.user_ids[0]), "flash_sale_id": str(sale.id), "quantity": 1}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def assert_json_error(reply, status: int, code: str) -> None:
    assert (reply.status, reply.json) == (status, {"error": code, "message": reply.json["message"]})
    assert reply.json["message"]
    assert reply.header("content-type") == "application/json"
    assert reply.header("x-request-id")


# (id, how to build the request from the sale, expected status, expected code)
BODY_CASES = [
    ("malformed-json", lambda s: {"body": b'{"user_id": ', "headers": JSON}, 422, "invalid_request"),
    ("not-json", lambda s: {"body": b"hello", "headers": JSON}, 422, "invalid_request"),
    ("empty-body", lambda s: {"body": b"", "headers": JSON}, 422, "invalid_request"),
    ("blank-body", lambda s: {"body": b"  \n ", "headers": JSON}, 422, "invalid_request"),
    ("json-array", lambda s: {"body": b"[]", "headers": JSON}, 422, "invalid_request"),
    ("json-null", lambda s: {"body": b"null", "headers": JSON}, 422, "invalid_request"),
    ("json-string", lambda s: {"body": b'"order"', "headers": JSON}, 422, "invalid_request"),
    ("invalid-utf8", lambda s: {"body": b'{"user_id": "\xff\xfe"}', "headers": JSON}, 422, "invalid_request"),
    ("deeply-nested", lambda s: {"body": b"[" * 3000 + b"]" * 3000, "headers": JSON}, 422, "invalid_request"),
    (
        "text-plain",
        lambda s: {"body": json.dumps(order_body(s)).encode(), "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    ("no-content-type", lambda s: {"body": json.dumps(order_body(s)).encode()}, 415, "unsupported_media_type"),
    (
        "form-encoded",
        lambda s: {"body": b"quantity=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "unsupported_media_type",
    ),
    (
        "latin-1-json",
        lambda s: {
            "body": json.dumps(order_body(s)).encode(),
            "headers": {"Content-Type": "application/json; charset=latin-1"},
        },
        415,
        "unsupported_media_type",
    ),
    ("oversized", lambda s: {"body": b" " * (MAX_BODY + 1), "headers": JSON}, 413, "payload_too_large"),
    ("oversized-chunked", lambda s: {"chunks": [b" " * 4096] * 3, "headers": JSON}, 413, "payload_too_large"),
    ("missing-user", lambda s: {"json_body": order_body(s, user_id=...)}, 422, "invalid_request"),
    ("missing-sale", lambda s: {"json_body": order_body(s, flash_sale_id=...)}, 422, "invalid_request"),
    ("missing-quantity", lambda s: {"json_body": order_body(s, quantity=...)}, 422, "invalid_request"),
    ("extra-field", lambda s: {"json_body": order_body(s, price_cents=1)}, 422, "invalid_request"),
    ("user-id-number", lambda s: {"json_body": order_body(s, user_id=42)}, 422, "invalid_request"),
    ("user-id-not-uuid", lambda s: {"json_body": order_body(s, user_id="alice")}, 422, "invalid_request"),
    ("sale-id-empty", lambda s: {"json_body": order_body(s, flash_sale_id="")}, 422, "invalid_request"),
    ("sale-id-truncated", lambda s: {"json_body": order_body(s, flash_sale_id=str(s.id)[:-1])}, 422, "invalid_request"),
    (
        "sale-id-with-nul",
        lambda s: {"json_body": order_body(s, flash_sale_id=str(s.id) + "\x00")},
        422,
        "invalid_request",
    ),
    ("ids-null", lambda s: {"json_body": order_body(s, user_id=None, flash_sale_id=None)}, 422, "invalid_request"),
    ("quantity-zero", lambda s: {"json_body": order_body(s, quantity=0)}, 422, "invalid_quantity"),
    ("quantity-negative", lambda s: {"json_body": order_body(s, quantity=-1)}, 422, "invalid_quantity"),
    ("quantity-2-to-31", lambda s: {"json_body": order_body(s, quantity=2**31)}, 422, "invalid_quantity"),
    ("quantity-huge", lambda s: {"json_body": order_body(s, quantity=10**40)}, 422, "invalid_quantity"),
    ("quantity-fraction", lambda s: {"json_body": order_body(s, quantity=1.5)}, 422, "invalid_quantity"),
    ("quantity-string", lambda s: {"json_body": order_body(s, quantity="1")}, 422, "invalid_quantity"),
    ("quantity-bool", lambda s: {"json_body": order_body(s, quantity=True)}, 422, "invalid_quantity"),
    ("quantity-null", lambda s: {"json_body": order_body(s, quantity=None)}, 422, "invalid_quantity"),
    ("bad-ids-and-quantity", lambda s: {"json_body": order_body(s, user_id="x", quantity=0)}, 422, "invalid_request"),
]


@pytest.mark.parametrize(("build", "status", "code"), [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_bad_order_body_is_refused_and_orders_nothing(api, sale, database_url, build, status, code):
    reply = api.post("/api/orders", **build(sale))

    assert_json_error(reply, status, code)
    assert count_orders(database_url) == 0


def test_messages_name_the_offending_fields(api, sale):
    message = api.post("/api/orders", json_body=order_body(sale, user_id="x", quantity=..., colour="red")).json[
        "message"
    ]
    assert "user_id" in message
    assert "quantity" in message
    assert "colour" in message


def test_quantity_message_says_the_range(api, sale):
    reply = api.post("/api/orders", json_body=order_body(sale, quantity=0))
    assert reply.json["message"] == "quantity must be a whole number from 1 to 2147483647, got 0"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8", "application/merge+json"]
)
def test_json_content_types_with_parameters_are_accepted(api, sale, content_type):
    reply = api.post("/api/orders", body=json.dumps(order_body(sale)).encode(), headers={"Content-Type": content_type})
    assert reply.status == 201


def test_a_whole_number_written_as_a_float_is_a_quantity(api, sale):
    """JSON Schema's `integer` includes 2.0, and the documented schema says `integer`."""
    reply = api.post("/api/orders", json_body=order_body(sale, quantity=2.0))
    assert (reply.status, reply.json["quantity"]) == (201, 2)


def test_body_at_the_size_limit_is_read(api, sale):
    body = json.dumps(order_body(sale)).encode()
    reply = api.post("/api/orders", body=body + b" " * (MAX_BODY - len(body)), headers=JSON)
    assert reply.status == 201


ROUTE_CASES = [
    ("GET", "/nope", 404, "not_found", None),
    ("POST", "/api/order", 404, "not_found", None),
    ("GET", "/api/orders", 405, "method_not_allowed", "POST"),
    ("PUT", "/api/orders", 405, "method_not_allowed", "POST"),
    ("DELETE", "/users", 405, "method_not_allowed", "GET"),
    ("POST", "/health", 405, "method_not_allowed", "GET"),
    ("PATCH", "/api/flash-sales/00000000-0000-0000-0000-000000000000", 405, "method_not_allowed", "GET"),
]


@pytest.mark.parametrize(("method", "path", "status", "code", "allowed"), ROUTE_CASES)
def test_unknown_routes_and_methods(api, method, path, status, code, allowed):
    reply = api.request(method, path, json_body={})

    assert_json_error(reply, status, code)
    if allowed is not None:
        assert allowed in reply.header("allow")
