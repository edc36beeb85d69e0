"""`GET /api/flash-sales/{flash_sale_id}`: the sale's window, stock and limit, read without locking."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flashsale.domain import SaleNotFound
from flashsale.http.flash_sale_dto import FlashSaleResponse
from flashsale.http.handler_context import context_of
from flashsale.http.params import path_uuid
from flashsale.http.responses import model_response
from flashsale.repositories import flash_sales


async def get_flash_sale(request: Request) -> Response:
    context = context_of(request)
    sale_id = path_uuid(request, "flash_sale_id")
    async with context.open_pool.connection() as conn:
        sale = await flash_sales.get(conn, sale_id)
    if sale is None:
        raise SaleNotFound(sale_id)
    return model_response(FlashSaleResponse.from_domain(sale, context.clock()))
