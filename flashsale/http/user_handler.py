"""The users load tools need as buyers, in a stable order (by id):

- `GET /users?limit=&offset=`: the original's list, a JSON array of `{"id", "created_at"}` (every user unless
  `limit` is given), what its k6 scripts read in their setup;
- `GET /api/users?limit=&offset=`: one page of ids and the total, `{"user_ids", "total", "limit", "offset"}`, what
  the load runner and the Locust engine page through.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flashsale.http.handler_context import context_of
from flashsale.http.params import query_model
from flashsale.http.responses import model_response
from flashsale.http.user_dto import UserIdsPage, UserList, UserListQuery, UserResponse, UsersQuery
from flashsale.repositories import users


async def list_users(request: Request) -> Response:
    query = query_model(request, UserListQuery)
    async with context_of(request).open_pool.connection() as conn:
        found = await users.list_all(conn, limit=query.limit, offset=query.offset)
    return model_response(UserList([UserResponse.from_domain(user) for user in found]))


async def list_user_ids(request: Request) -> Response:
    query = query_model(request, UsersQuery)
    async with context_of(request).open_pool.connection() as conn:
        ids = await users.list_ids(conn, limit=query.limit, offset=query.offset)
        total = await users.count(conn)
    return model_response(UserIdsPage(user_ids=ids, total=total, limit=query.limit, offset=query.offset))
