"""What the service reads and writes: pydantic models for every body and query, from which `/openapi.json` is
generated. Requests are strict (no coercion, no unknown fields); responses mirror the domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from flashsale.domain import FlashSale, Order, OrderStatus, PlaceOrder, User
from flashsale.domain.model import MAX_QUANTITY

MAX_PAGE = 1000
MAX_OFFSET = 2**31 - 1


def _quantity_or_domain_error(value: Any, handler) -> int:
    """Any unusable quantity (0, negative, beyond 2^31 - 1, not an integer) is the domain's `invalid_quantity`.

    `2.0` is an integer to JSON Schema (and so to the OpenAPI document), so it is taken as 2; `"2"` and `true` are not.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        return handler(value)
    except ValidationError:
        got = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise PydanticCustomError(
            "invalid_quantity",
            "quantity must be a whole number from 1 to {max}, got {got}",
            {"max": MAX_QUANTITY, "got": got},
        ) from None


Quantity = Annotated[
    int,
    Field(ge=1, le=MAX_QUANTITY, description="units to buy; at most the sale's per-user limit"),
    WrapValidator(_quantity_or_domain_error),
]


class PlaceOrderRequest(BaseModel):
    """Body of `POST /api/orders`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: UUID
    flash_sale_id: UUID
    quantity: Quantity

    def to_command(self, *, idempotency_key: str | None = None) -> PlaceOrder:
        return PlaceOrder(
            user_id=self.user_id,
            flash_sale_id=self.flash_sale_id,
            quantity=self.quantity,
            idempotency_key=idempotency_key,
        )


class OrderResponse(BaseModel):
    """An order as stored (the body of a 201). `order_id` repeats `id`, as the original's order bodies name it."""

    id: UUID
    order_id: UUID
    user_id: UUID
    flash_sale_id: UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    status: OrderStatus
    created_at: datetime

    @classmethod
    def from_domain(cls, order: Order) -> OrderResponse:
        return cls(
            id=order.id,
            order_id=order.id,
            user_id=order.user_id,
            flash_sale_id=order.flash_sale_id,
            quantity=order.quantity,
            status=order.status,
            created_at=order.created_at,
        )


# An order's progress as the original's `GET /orders/{order_id}/status` names it, by stored status.
Progress = Literal["pending", "completed", "failed"]
PROGRESS_BY_STATUS: dict[OrderStatus, Progress] = {
    OrderStatus.PENDING: "pending",
    OrderStatus.CONFIRMED: "completed",
    OrderStatus.FAILED: "failed",
}


class OrderStatusResponse(BaseModel):
    """Where an order stands: `pending` (accepted, not settled yet), `completed` (with the order) or `failed`
    (with the reason: the domain error's code, e.g. `sold_out`)."""

    order_id: UUID
    status: Literal["pending", "completed", "failed"]
    order: OrderResponse | None = None
    reason: str | None = None

    @classmethod
    def from_domain(cls, order: Order) -> OrderStatusResponse:
        progress = PROGRESS_BY_STATUS[order.status]
        return cls(
            order_id=order.id,
            status=progress,
            order=OrderResponse.from_domain(order) if progress == "completed" else None,
            reason=order.failure_reason if progress == "failed" else None,
        )


class OrderAcceptedResponse(BaseModel):
    """An order accepted for settlement by the workers (`serve --accept async`): the body of a 202. `status` is
    `pending`, or where the order stands when a retry with its idempotency key comes after its settlement."""

    order_id: UUID
    status: Literal["pending", "completed", "failed"]
    status_url: str


class FlashSaleResponse(BaseModel):
    """A flash sale: its window, stock and per-user limit, and whether it is open now."""

    id: UUID
    product_id: UUID
    starts_at: datetime
    ends_at: datetime
    total_inventory: int = Field(ge=0)
    remaining_inventory: int = Field(ge=0)
    per_user_limit: int = Field(ge=1)
    active: bool

    @classmethod
    def from_domain(cls, sale: FlashSale, now: datetime) -> FlashSaleResponse:
        return cls(
            id=sale.id,
            product_id=sale.product_id,
            starts_at=sale.starts_at,
            ends_at=sale.ends_at,
            total_inventory=sale.total_inventory,
            remaining_inventory=sale.remaining_inventory,
            per_user_limit=sale.per_user_limit,
            active=sale.is_active(now),
        )


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


class PoolSnapshot(BaseModel):
    size: int = Field(ge=0, description="connections open")
    available: int = Field(ge=0, description="connections idle in the pool")
    waiting: int = Field(ge=0, description="requests waiting for a connection")


class HealthResponse(BaseModel):
    """The service is up and its database answered."""

    status: Literal["ok"]
    database: Literal["ok"]
    strategy: str
    pool: PoolSnapshot


class ErrorResponse(BaseModel):
    """Every error: a stable machine-readable `error` code and a human `message`."""

    error: str = Field(examples=["sold_out"])
    message: str
