"""Users, products, flash sales and orders, as the order flow sees them."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from flashsale.domain.errors import InvalidIdempotencyKey, InvalidQuantity, PerUserLimitExceeded, SaleNotActive, SoldOut

MAX_QUANTITY = 2**31 - 1  # what an `integer` column holds
MAX_IDEMPOTENCY_KEY = 255  # characters, as Stripe's; visible ASCII only (a header value, logged as is)
_IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class User:
    id: UUID
    name: str
    created_at: datetime | None = None


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
    failure_reason: str | None = None  # why a FAILED order was refused (a domain error's code)


@dataclass(frozen=True)
class PlaceOrder:
    """The command: this user wants `quantity` units from this flash sale.

    With an `idempotency_key`, the order is placed at most once for that key: the key is stored with the order,
    and sending the command again returns that order instead of placing another (see `flashsale.services.idempotency`).
    """

    user_id: UUID
    flash_sale_id: UUID
    quantity: int = 1
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        check_quantity(self.quantity)
        if self.idempotency_key is not None:
            check_idempotency_key(self.idempotency_key)

    def same_request(self, order: Order) -> bool:
        """Does `order` answer this very command (same user, sale and quantity)?"""
        return (order.user_id, order.flash_sale_id, order.quantity) == (
            self.user_id,
            self.flash_sale_id,
            self.quantity,
        )


def check_idempotency_key(key: str) -> None:
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey(key)


def check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= MAX_QUANTITY:
        raise InvalidQuantity(quantity)
