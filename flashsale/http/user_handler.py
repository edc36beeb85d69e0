"""`GET /users?limit=&offset=`: user ids in a stable order, for load tools that need real buyers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flashsale.http.order_dto import UserIdsPage, UsersQuery
from flashsale.http.params import query_model
from flashsale.http.responses import model_response
from flashsale.http.service import service_of
from flashsale.repositories import users


async def list_users(request: Request) -> Response:
    query = query_model(request, UsersQuery)
    async with service_of(request).open_pool.connection() as conn:
        ids = await users.list_ids(conn, limit=query.limit, offset=query.offset)
        total = await users.count(conn)
    return model_response(UserIdsPage(user_ids=ids, total=total, limit=query.limit, offset=query.offset))
