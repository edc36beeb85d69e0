"""The service's endpoints, declared once: `create_app` routes them, in this order, and `openapi.document()` documents
them, so that a route and its documentation cannot part.

An `Endpoint` is a method, a path and its handler, with what a client is told of it: its answers (status, DTO,
headers), its error statuses, and what it reads (a body DTO, a query DTO, header parameters). Its path parameters are
the path's own `{name}`s, each a UUID (read by `params.path_uuid`) described in `PATH_PARAMETERS`. The document adds
what every endpoint shares: `X-Request-ID` on every answer (the middleware's) and `ErrorResponse` for every error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flashsale import contract
from flashsale.domain.model import MAX_IDEMPOTENCY_KEY
from flashsale.http.flash_sale_dto import FlashSaleResponse
from flashsale.http.flash_sale_handler import get_flash_sale
from flashsale.http.handler_context import context_of
from flashsale.http.health_dto import HealthResponse
from flashsale.http.health_handler import health
from flashsale.http.order_dto import OrderAcceptedResponse, OrderResponse, OrderStatusResponse, PlaceOrderRequest
from flashsale.http.order_handler import get_order, get_order_status, place_order
from flashsale.http.user_dto import UserIdsPage, UserList, UserListQuery, UsersQuery
from flashsale.http.user_handler import list_user_ids, list_users
from flashsale.services import idempotency

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Header:
    """A header a request may send or an answer carries."""

    name: str
    description: str
    schema: Mapping[str, Any]
    required: bool = True


@dataclass(frozen=True)
class Answer:
    """An answer that is not an error: its status, its body (a DTO; None for the text of `/metrics`), its headers and
    its OpenAPI links (what it supplies to other operations, for stateful clients and fuzzers)."""

    status: int
    description: str
    model: type[BaseModel] | None
    headers: tuple[Header, ...] = ()
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    answers: tuple[Answer, ...] = ()
    errors: tuple[int, ...] = ()  # statuses, each described in `openapi.ERROR_STATUS_TEXT`
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    documented: bool = True

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])


PATH_PARAMETERS = {"order_id": "the order's id", "flash_sale_id": "the flash sale's id"}


async def metrics(request: Request) -> Response:
    return await context_of(request).metrics.endpoint(request)


async def openapi_document(request: Request) -> Response:
    """The document `create_app` made once (`openapi.document()`), as JSON."""
    return Response(request.app.state.openapi_json, media_type=contract.JSON_CONTENT_TYPE)


IDEMPOTENCY_KEY = Header(
    contract.IDEMPOTENCY_KEY_HEADER,
    f"{idempotency.POLICY} Over HTTP: the earlier order comes back 201 (202 under `--accept async`) with "
    f"`{contract.REPLAYED_HEADER}: true`; a reused key is a 409.",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": "^[!-~]+$"},
    required=False,
)
REPLAYED = Header(
    contract.REPLAYED_HEADER,
    f"`true` when the order was placed earlier with the same `{contract.IDEMPOTENCY_KEY_HEADER}` and nothing was "
    "placed now",
    {"type": "string", "enum": ["true"]},
    required=False,
)
_PLACE_ORDER = Endpoint(
    "POST",
    contract.ORDERS_PATH,
    place_order,
    "placeOrder",
    "Place an order on a flash sale",
    answers=(
        Answer(
            201,
            "the order, confirmed",
            OrderResponse,
            (Header("Location", "where the new order can be read", {"type": "string"}), REPLAYED),
            {
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
            },
        ),
        Answer(
            202,
            "`serve --accept async`: the order is accepted (stored PENDING) and will be settled; follow it at "
            "`status_url` (also in `Location`)",
            OrderAcceptedResponse,
            (Header("Location", "the order's status URL", {"type": "string"}), REPLAYED),
        ),
    ),
    errors=(404, 409, 413, 415, 422, 429, 503),
    body=PlaceOrderRequest,
    headers=(IDEMPOTENCY_KEY,),
)


def _read(
    path: str,
    handler: Handler,
    operation_id: str,
    summary: str,
    answer: str,
    model: type[BaseModel] | None,
    *,
    errors: tuple[int, ...] = (),
    query: type[BaseModel] | None = None,
) -> Endpoint:
    """A GET answered 200 with `model`, described as `answer`."""
    return Endpoint("GET", path, handler, operation_id, summary, (Answer(200, answer, model),), errors, query=query)


ENDPOINTS: tuple[Endpoint, ...] = (
    _PLACE_ORDER,
    _read(
        contract.ORDER_PATH, get_order, "getOrder", "Read one order", "the order", OrderResponse, errors=(404, 422, 503)
    ),
    _read(
        contract.FLASH_SALE_PATH,
        get_flash_sale,
        "getFlashSale",
        "Read a flash sale: window, stock, per-user limit",
        "the flash sale",
        FlashSaleResponse,
        errors=(404, 422, 503),
    ),
    _read(
        contract.USER_IDS_PATH,
        list_user_ids,
        "listUserIds",
        "User ids in a stable order, a page at a time, with the total",
        "one page of user ids",
        UserIdsPage,
        errors=(422, 503),
        query=UsersQuery,
    ),
    # The original's contract (FlashDeal), so that its k6 scripts run unchanged.
    replace(
        _PLACE_ORDER,
        path=contract.ORIGINAL_ORDERS_PATH,
        operation_id="placeOrderOriginal",
        summary=f"Place an order on a flash sale (the original's route, the same as POST {contract.ORDERS_PATH})",
    ),
    _read(
        contract.ORDER_STATUS_PATH,
        get_order_status,
        "getOrderStatus",
        "Where an order stands: pending, completed (with the order) or failed (with the reason)",
        "the order's status",
        OrderStatusResponse,
        errors=(404, 422, 503),
    ),
    _read(
        contract.ORIGINAL_USERS_PATH,
        list_users,
        "listUsers",
        "Users in a stable order (the original's list): every one, or a page with limit",
        "the users, a JSON array",
        UserList,
        errors=(422, 503),
        query=UserListQuery,
    ),
    _read(
        contract.HEALTH_PATH,
        health,
        "health",
        "Is the service up and its database reachable",
        "up",
        HealthResponse,
        errors=(503,),
    ),
    _read(
        contract.METRICS_PATH,
        metrics,
        "metrics",
        "Prometheus metrics in the text exposition format",
        "the metrics",
        None,
    ),
    Endpoint("GET", contract.OPENAPI_PATH, openapi_document, "openapi", "This document", documented=False),
)
