"""`POST /api/orders` (and the original's `POST /orders`) places an order through the configured strategy;
`GET /api/orders/{order_id}` reads one; `GET /orders/{order_id}/status` says where it stands (the original's
status URL: `pending`, `completed` with the order, or `failed` with the reason).

`POST /api/orders` takes an optional `Idempotency-Key` header (1 to 255 visible ASCII characters): the order is
placed at most once for that key, and a request that repeats it (same body) gets the order placed the first time,
201 again, with `Idempotent-Replayed: true`; the same key with another body is a 409 `idempotency_key_reused`.
See `flashsale.services.idempotency` for what happens to the keys of refused orders. With admission control
(`flashsale.admission`), a user over the per-user rate is refused with 429 `rate_limited` before any database work,
and an order that finds the order queue full with 503 `queue_full`. With `--accept async`
(`flashsale.services.settlement`), the order is stored as PENDING and answered 202 with its status URL; the queue's
workers settle it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from flashsale import contract
from flashsale.contract import ACCEPTED, CREATED, IDEMPOTENCY_KEY_HEADER, REPLAYED, REPLAYED_HEADER
from flashsale.domain import InvalidIdempotencyKey, Order, check_idempotency_key
from flashsale.http.errors import ApiError, to_api_error
from flashsale.http.handler_context import context_of
from flashsale.http.json_body import read_model
from flashsale.http.order_dto import (
    PROGRESS_BY_STATUS,
    OrderAcceptedResponse,
    OrderResponse,
    OrderStatusResponse,
    PlaceOrderRequest,
)
from flashsale.http.params import path_uuid
from flashsale.http.responses import model_response
from flashsale.repositories import orders, settlements
from flashsale.services.settlement import SETTLEMENT_KEY_PREFIX


async def place_order(request: Request) -> Response:
    context = context_of(request)
    try:
        key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
        if key is not None:
            check_idempotency_key(key)
            if key.startswith(SETTLEMENT_KEY_PREFIX):  # the settlers' own keys (see flashsale.services.settlement)
                raise InvalidIdempotencyKey(key)
        command = (await read_model(request, PlaceOrderRequest)).to_command(idempotency_key=key)
        await context.admit(command)
        if context.settler is not None:
            return _accepted(context, await context.accept_order(command))
        placed = await context.place_order(command)
    except Exception as exc:
        error = to_api_error(exc)
        context.metrics.count_order(error.code if error else "internal")
        raise
    order = placed.order
    headers = {"Location": contract.order_path(order.id)}
    if placed.replayed:
        headers[REPLAYED_HEADER] = "true"
    context.metrics.count_order(REPLAYED if placed.replayed else CREATED)
    return model_response(OrderResponse.from_domain(order), 201, headers=headers)


def _accepted(context, placed) -> Response:
    """202 with where to follow the order (`--accept async`)."""
    order = placed.order
    status_url = contract.order_status_path(order.id)
    headers = {"Location": status_url}
    if placed.replayed:
        headers[REPLAYED_HEADER] = "true"
    context.metrics.count_order(REPLAYED if placed.replayed else ACCEPTED)
    body = OrderAcceptedResponse(order_id=order.id, status=PROGRESS_BY_STATUS[order.status], status_url=status_url)
    return model_response(body, 202, headers=headers)


async def get_order(request: Request) -> Response:
    return model_response(OrderResponse.from_domain(await _stored_order(request, orders.get)))


async def get_order_status(request: Request) -> Response:
    """Where an order stands (read with its failure reason, which only asynchronous settlement writes)."""
    return model_response(OrderStatusResponse.from_domain(await _stored_order(request, settlements.get)))


async def _stored_order(request: Request, read: Callable[[AsyncConnection, UUID], Awaitable[Order | None]]) -> Order:
    """The order of the path's `order_id`, read by `read`; a 404 if there is none."""
    order_id = path_uuid(request, "order_id")
    async with context_of(request).open_pool.connection() as conn:
        order = await read(conn, order_id)
    if order is None:
        raise ApiError(404, "order_not_found", f"order {order_id} does not exist")
    return order
