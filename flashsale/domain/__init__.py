"""The flash-sale domain: plain objects and errors, free of any database import."""

from flashsale.domain.clock import Clock, utc_now
from flashsale.domain.errors import (
    DomainError,
    IdempotencyKeyReused,
    IdempotencyKeyTaken,
    InvalidIdempotencyKey,
    InvalidQuantity,
    PerUserLimitExceeded,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.domain.model import (
    FlashSale,
    Order,
    OrderStatus,
    PlaceOrder,
    Product,
    User,
    check_idempotency_key,
)

__all__ = [
    "Clock",
    "DomainError",
    "FlashSale",
    "IdempotencyKeyReused",
    "IdempotencyKeyTaken",
    "InvalidIdempotencyKey",
    "InvalidQuantity",
    "Order",
    "OrderStatus",
    "PerUserLimitExceeded",
    "PlaceOrder",
    "Product",
    "SaleNotActive",
    "SaleNotFound",
    "SoldOut",
    "User",
    "UserNotFound",
    "check_idempotency_key",
    "utc_now",
]
