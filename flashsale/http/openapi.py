"""The OpenAPI 3.1 document of the service, generated from the pydantic models of the `*_dto` modules."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from flashsale import __version__, contract
from flashsale.contract import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER, REQUEST_ID_HEADER, RETRY_AFTER_HEADER
from flashsale.domain.model import MAX_IDEMPOTENCY_KEY
from flashsale.http import flash_sale_dto, health_dto, order_dto, user_dto
from flashsale.http.errors import ErrorResponse

_SCHEMA_REF = "#/components/schemas/{model}"
_ERROR_STATUS_TEXT = {
    404: "not found: `sale_not_found`, `user_not_found`, `order_not_found`",
    409: "refused by the sale: `sold_out`, `per_user_limit_exceeded`, `sale_not_active`; or "
    "`idempotency_key_reused`: the key already has an order for another user, sale or quantity",
    413: "`payload_too_large`: the body is over the size limit",
    415: "`unsupported_media_type`: the body is not declared as UTF-8 application/json",
    422: "`invalid_request` (malformed JSON, missing, extra or mistyped fields or parameters, ids that are not "
    "UUIDs), `invalid_quantity` or `invalid_idempotency_key`",
    429: "`rate_limited`: this user sent more orders a second than `serve --user-rate` allows; try again after "
    "`Retry-After` seconds",
    503: "try again after `Retry-After` seconds: `unavailable` (database down, or no pooled connection free in time), "
    "`overloaded` (too many requests already wait for a connection), `queue_full` (the order queue of "
    "`serve --queue-size` is full), `busy` or `rejected` (the strategy could not take the order now)",
}


def document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (order_dto.PlaceOrderRequest, "validation"),
        (order_dto.OrderResponse, "serialization"),
        (flash_sale_dto.FlashSaleResponse, "serialization"),
        (user_dto.UserIdsPage, "serialization"),
        (user_dto.UserList, "serialization"),
        (order_dto.OrderStatusResponse, "serialization"),
        (order_dto.OrderAcceptedResponse, "serialization"),
        (health_dto.HealthResponse, "serialization"),
        (ErrorResponse, "serialization"),
    ]
    refs, schemas = models_json_schema(models, ref_template=_SCHEMA_REF)
    ref = {model: refs[(model, mode)] for model, mode in models}
    error = ref[ErrorResponse]

    def ok(
        description: str,
        model: type[BaseModel],
        status: int = 200,
        headers: dict | None = None,
        links: dict | None = None,
    ) -> dict:
        response = {
            "description": description,
            "headers": {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}, **(headers or {})},
            "content": {"application/json": {"schema": ref[model]}},
        }
        if links:
            response["links"] = links
        return {str(status): response}

    def errors(*statuses: int) -> dict:
        out = {}
        for status in statuses:
            headers = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
            if status in (429, 503):
                headers[RETRY_AFTER_HEADER] = {"$ref": "#/components/headers/RetryAfter"}
            out[str(status)] = {
                "description": _ERROR_STATUS_TEXT[status],
                "headers": headers,
                "content": {"application/json": {"schema": error}},
            }
        return out

    def uuid_path_parameter(name: str, description: str) -> dict:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string", "format": "uuid"},
        }

    def query_parameters(model: type[BaseModel]) -> list[dict]:
        schema = model.model_json_schema()["properties"]
        return [
            {"name": name, "in": "query", "required": False, "description": field.description, "schema": schema[name]}
            for name, field in model.model_fields.items()
        ]

    location = {
        "Location": {
            "description": "where the new order can be read",
            "required": True,
            "schema": {"type": "string"},
        },
        REPLAYED_HEADER: {
            "description": "`true` when the order was placed earlier with the same `Idempotency-Key` and nothing "
            "was placed now",
            "required": False,
            "schema": {"type": "string", "enum": ["true"]},
        },
    }
    accepted_location = {
        **location,
        "Location": {"description": "the order's status URL", "required": True, "schema": {"type": "string"}},
    }
    idempotency_key = {
        "name": IDEMPOTENCY_KEY_HEADER,
        "in": "header",
        "required": False,
        "description": "place the order at most once for this key: sending the same request again answers with the "
        "order placed the first time (201, `Idempotent-Replayed: true`), even while the first is still running; "
        "the same key with another body is a 409 `idempotency_key_reused`. A key is kept with the order it "
        "created; a request refused or not carried out keeps nothing, so it may be sent again with its key.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[!-~]+$"},
    }

    # What a placed order supplies to the other operations (OpenAPI links: stateful clients and fuzzers follow them).
    order_links = {
        "GetOrder": {
            "operationId": "getOrder",
            "parameters": {"order_id": "$response.body#/id"},
            "description": "the order just placed",
        },
        "GetFlashSale": {
            "operationId": "getFlashSale",
            "parameters": {"flash_sale_id": "$response.body#/flash_sale_id"},
            "description": "the sale the order was placed on",
        },
    }
    place_order = {
        "operationId": "placeOrder",
        "summary": "Place an order on a flash sale",
        "parameters": [idempotency_key],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ref[order_dto.PlaceOrderRequest]}},
        },
        "responses": {
            **ok("the order, confirmed", order_dto.OrderResponse, 201, location, order_links),
            **ok(
                "`serve --accept async`: the order is accepted (stored PENDING) and will be settled; follow it at "
                "`status_url` (also in `Location`)",
                order_dto.OrderAcceptedResponse,
                202,
                accepted_location,
            ),
            **errors(404, 409, 413, 415, 422, 429, 503),
        },
    }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flashsale order service",
            "version": __version__,
            "description": "Orders on flash sales through a chosen inventory-locking strategy. Every response "
            f"carries `{REQUEST_ID_HEADER}` (the caller's, when it sends a sane one); every error is "
            '`{"error": code, "message": text}`.',
        },
        "paths": {
            contract.ORDERS_PATH: {"post": place_order},
            contract.ORIGINAL_ORDERS_PATH: {
                "post": {
                    **place_order,
                    "operationId": "placeOrderOriginal",
                    "summary": "Place an order on a flash sale (the original's route, the same as POST /api/orders)",
                }
            },
            contract.ORDER_STATUS_PATH: {
                "get": {
                    "operationId": "getOrderStatus",
                    "summary": "Where an order stands: pending, completed (with the order) or failed (with the reason)",
                    "parameters": [uuid_path_parameter("order_id", "the order's id")],
                    "responses": {**ok("the order's status", order_dto.OrderStatusResponse), **errors(404, 422, 503)},
                }
            },
            contract.ORDER_PATH: {
                "get": {
                    "operationId": "getOrder",
                    "summary": "Read one order",
                    "parameters": [uuid_path_parameter("order_id", "the order's id")],
                    "responses": {**ok("the order", order_dto.OrderResponse), **errors(404, 422, 503)},
                }
            },
            contract.FLASH_SALE_PATH: {
                "get": {
                    "operationId": "getFlashSale",
                    "summary": "Read a flash sale: window, stock, per-user limit",
                    "parameters": [uuid_path_parameter("flash_sale_id", "the flash sale's id")],
                    "responses": {**ok("the flash sale", flash_sale_dto.FlashSaleResponse), **errors(404, 422, 503)},
                }
            },
            contract.USER_IDS_PATH: {
                "get": {
                    "operationId": "listUserIds",
                    "summary": "User ids in a stable order, a page at a time, with the total",
                    "parameters": query_parameters(user_dto.UsersQuery),
                    "responses": {**ok("one page of user ids", user_dto.UserIdsPage), **errors(422, 503)},
                }
            },
            contract.ORIGINAL_USERS_PATH: {
                "get": {
                    "operationId": "listUsers",
                    "summary": "Users in a stable order (the original's list): every one, or a page with limit",
                    "parameters": query_parameters(user_dto.UserListQuery),
                    "responses": {**ok("the users, a JSON array", user_dto.UserList), **errors(422, 503)},
                }
            },
            contract.HEALTH_PATH: {
                "get": {
                    "operationId": "health",
                    "summary": "Is the service up and its database reachable",
                    "responses": {**ok("up", health_dto.HealthResponse), **errors(503)},
                }
            },
            contract.METRICS_PATH: {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics in the text exposition format",
                    "responses": {
                        "200": {
                            "description": "the metrics",
                            "headers": {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}},
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas["$defs"],
            "headers": {
                "RequestId": {
                    "description": "the request's id, as the caller sent it or generated; logs carry the same",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                "RetryAfter": {
                    "description": "seconds to wait before trying again",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
            },
        },
    }
