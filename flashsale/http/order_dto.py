"""What the order handlers read and write: the body of `POST /api/orders` (strict: no coercion, no unknown
fields; any unusable quantity is the domain's `invalid_quantity`), an order, its status and its acceptance. Like the
other `*_dto` modules, these pydantic models mirror the domain objects, and `/openapi.json` is generated from them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError

from flashsale.domain import Order, OrderStatus, PlaceOrder
from flashsale.domain.model import MAX_QUANTITY


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
