"""`GET /health`: 200 once the pool is open and the database answers, else a 503 like any other."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flashsale.http.handler_context import context_of
from flashsale.http.health_dto import HealthResponse, PoolSnapshot
from flashsale.http.responses import model_response
from flashsale.repositories import database


async def health(request: Request) -> Response:
    context = context_of(request)
    pool = context.open_pool
    async with pool.connection() as conn:
        await database.ping(conn)
    stats = pool.get_stats()
    return model_response(
        HealthResponse(
            status="ok",
            database="ok",
            strategy=context.strategy.name,
            pool=PoolSnapshot(
                size=stats["pool_size"], available=stats["pool_available"], waiting=stats.get("requests_waiting", 0)
            ),
        )
    )
