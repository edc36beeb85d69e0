"""What the user handlers read and write: the queries of `GET /api/users` (a page of ids) and of `GET /users`
(the original's array of users), and their answers."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field, RootModel

from flashsale.domain import User

MAX_PAGE = 1000
MAX_OFFSET = 2**31 - 1


class UsersQuery(BaseModel):
    """Query of `GET /api/users` (values arrive as text and are parsed as integers)."""

    limit: int = Field(100, ge=1, le=MAX_PAGE, description=f"ids per page, 1 to {MAX_PAGE}")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="ids to skip")


class UserListQuery(BaseModel):
    """Query of `GET /users`, the original's list: every user unless `limit` is given."""

    limit: int | None = Field(None, ge=1, le=MAX_PAGE, description=f"users per page, 1 to {MAX_PAGE} (default: all)")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="users to skip")


class UserResponse(BaseModel):
    """A user as the original's `GET /users` lists it."""

    id: UUID
    created_at: datetime | None  # None only for a user not read from the database

    @classmethod
    def from_domain(cls, user: User) -> UserResponse:
        return cls(id=user.id, created_at=user.created_at)


class UserList(RootModel[list[UserResponse]]):
    """Users in a stable order (by id): the body of `GET /users`, a JSON array."""


class UserIdsPage(BaseModel):
    """One page of user ids, in a stable order, and how many users there are in all."""

    user_ids: list[UUID]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=MAX_PAGE)
    offset: int = Field(ge=0)
