"""`GET /health`: 200 once the pool is open and the database answers, else a 503 like any other. It says how
admission control stands: per process, shared in Redis, or on its local fallback while Redis is away (still 200: the
service serves)."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from flashsale.http.handler_context import HandlerContext, context_of
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
            admission=_admission(context),
            pool=PoolSnapshot(
                size=stats["pool_size"], available=stats["pool_available"], waiting=stats.get("requests_waiting", 0)
            ),
        )
    )


def _admission(context: HandlerContext) -> Literal["local", "shared", "fallback"]:
    if context.shared is None:
        return "local"
    return "shared" if context.shared.breaker.closed else "fallback"
