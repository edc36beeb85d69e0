"""What `GET /api/flash-sales/{id}` answers: a flash sale, read without locking."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from flashsale.domain import FlashSale


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
