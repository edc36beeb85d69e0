"""`POST /api/orders` places an order through the configured strategy; `GET /api/orders/{order_id}` reads one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flashsale.http.errors import ApiError, to_api_error
from flashsale.http.json_body import read_model
from flashsale.http.order_dto import OrderResponse, PlaceOrderRequest
from flashsale.http.params import path_uuid
from flashsale.http.responses import model_response
from flashsale.http.service import service_of
from flashsale.repositories import orders


async def place_order(request: Request) -> Response:
    service = service_of(request)
    try:
        body = await read_model(request, PlaceOrderRequest)
        order = await service.strategy.place_order(service.open_pool, body.to_command())
    except Exception as exc:
        error = to_api_error(exc)
        service.metrics.count_order(error.code if error else "internal")
        raise
    service.metrics.count_order("created")
    return model_response(OrderResponse.from_domain(order), 201, headers={"Location": f"/api/orders/{order.id}"})


async def get_order(request: Request) -> Response:
    order_id = path_uuid(request, "order_id")
    async with service_of(request).open_pool.connection() as conn:
        order = await orders.get(conn, order_id)
    if order is None:
        raise ApiError(404, "order_not_found", f"order {order_id} does not exist")
    return model_response(OrderResponse.from_domain(order))
