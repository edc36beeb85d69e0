"""The flash-sale domain: plain objects and errors, free of any database import."""

from flashsale.domain.errors import (
    DomainError,
    InvalidQuantity,
    PerUserLimitExceeded,
    SaleNotActive,
    SaleNotFound,
    SoldOut,
    UserNotFound,
)
from flashsale.domain.model import FlashSale, Order, OrderStatus, PlaceOrder, Product, User

__all__ = [
    "DomainError",
    "FlashSale",
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
]
