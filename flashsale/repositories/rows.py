"""`*Record` types mirror table rows column for column; repositories read into them with psycopg's
`class_row` factory and hand domain objects to the rest of the program via `to_domain()`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from flashsale.domain import FlashSale, Order, OrderStatus, PlaceOrder, Product, User


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: UUID
    number: int
    name: str
    created_at: datetime

    def to_domain(self) -> User:
        return User(id=self.id, name=self.name, created_at=self.created_at)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    id: UUID
    name: str
    price_cents: int
    created_at: datetime

    def to_domain(self) -> Product:
        return Product(id=self.id, name=self.name, price_cents=self.price_cents)


@dataclass(frozen=True, slots=True)
class FlashSaleRecord:
    id: UUID
    product_id: UUID
    starts_at: datetime
    ends_at: datetime
    total_inventory: int
    remaining_inventory: int
    per_user_limit: int
    created_at: datetime

    def to_domain(self) -> FlashSale:
        return FlashSale(
            id=self.id,
            product_id=self.product_id,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            total_inventory=self.total_inventory,
            remaining_inventory=self.remaining_inventory,
            per_user_limit=self.per_user_limit,
        )


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: UUID
    user_id: UUID
    flash_sale_id: UUID
    quantity: int
    status: str
    created_at: datetime
    failure_reason: str | None = None  # migration 0005; only asynchronous settlement reads it

    def to_domain(self) -> Order:
        return Order(
            id=self.id,
            user_id=self.user_id,
            flash_sale_id=self.flash_sale_id,
            quantity=self.quantity,
            status=OrderStatus(self.status),
            created_at=self.created_at,
            failure_reason=self.failure_reason,
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Not a table: the row of the audit query (see repositories/audits.py)."""

    flash_sale_id: UUID
    total: int
    remaining: int
    per_user_limit: int
    orders: int
    confirmed_quantity: int
    limit_violations: int


@dataclass(frozen=True, slots=True)
class SaleSnapshotRecord(FlashSaleRecord):
    """Not a table: a sale read without a lock together with its version and what one user already bought,
    all from one snapshot (see `flash_sales.read_for_order`)."""

    version: int
    bought: int


@dataclass(frozen=True, slots=True)
class GateSaleRecord:
    """Not a table: what a stock gate is rebuilt from, read as its rebuild takes the sale's next epoch (see
    `gates.send_next_epoch`)."""

    epoch: int
    remaining: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class ShardRecord:
    flash_sale_id: UUID
    shard: int
    remaining: int


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    """Not a table: the row returned by the `place_order` SQL function (outcome "created" or a refusal code;
    the other columns carry the order or the figures behind the refusal)."""

    outcome: str
    order_id: UUID | None
    created_at: datetime | None
    remaining: int | None
    bought: int | None
    per_user_limit: int | None

    def to_domain(self, command: PlaceOrder) -> Order:
        """The order created for `command` (outcome "created"; the function returns only its id and time)."""
        assert self.order_id is not None
        assert self.created_at is not None
        return Order(
            id=self.order_id,
            user_id=command.user_id,
            flash_sale_id=command.flash_sale_id,
            quantity=command.quantity,
            status=OrderStatus.CONFIRMED,
            created_at=self.created_at,
        )
