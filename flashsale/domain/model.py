"""Users, products, flash sales and orders, as the order flow sees them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from flashsale.domain.errors import InvalidQuantity, PerUserLimitExceeded, SaleNotActive, SoldOut

MAX_QUANTITY = 2**31 - 1  # what an `integer` column holds


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class User:
    id: UUID
    name: str


@dataclass(frozen=True)
class Product:
    id: UUID
    name: str
    price_cents: int


@dataclass(frozen=True)
class FlashSale:
    id: UUID
    product_id: UUID
    starts_at: datetime
    ends_at: datetime
    total_inventory: int
    remaining_inventory: int
    per_user_limit: int

    @property
    def sold(self) -> int:
        return self.total_inventory - self.remaining_inventory

    def is_active(self, now: datetime) -> bool:
        """Open from `starts_at` (inclusive) until `ends_at` (exclusive)."""
        return self.starts_at <= now < self.ends_at

    def check_order(self, *, quantity: int, already_bought: int, now: datetime) -> None:
        """Raise the domain error that forbids this order, if any: the rules every strategy enforces."""
        check_quantity(quantity)
        if not self.is_active(now):
            raise SaleNotActive(self.id)
        if self.remaining_inventory < quantity:
            raise SoldOut(self.id, remaining=self.remaining_inventory, requested=quantity)
        if already_bought + quantity > self.per_user_limit:
            raise PerUserLimitExceeded(limit=self.per_user_limit, already=already_bought, requested=quantity)


@dataclass(frozen=True)
class Order:
    id: UUID
    user_id: UUID
    flash_sale_id: UUID
    quantity: int
    status: OrderStatus
    created_at: datetime


@dataclass(frozen=True)
class PlaceOrder:
    """The command: this user wants `quantity` units from this flash sale."""

    user_id: UUID
    flash_sale_id: UUID
    quantity: int = 1

    def __post_init__(self) -> None:
        check_quantity(self.quantity)


def check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
        raise InvalidQuantity(quantity)
