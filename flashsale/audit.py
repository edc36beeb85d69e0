"""The audit run after every load test: was anything oversold, is the inventory row consistent with the
confirmed orders, did any user get more than the per-user limit?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from uuid import UUID

from psycopg import AsyncConnection

from flashsale.domain import SaleNotFound
from flashsale.repositories import audits


@dataclass(frozen=True)
class Audit:
    total: int
    remaining: int
    orders: int  # confirmed orders (rows)
    confirmed_quantity: int  # units in confirmed orders
    oversold: int  # units sold beyond the total inventory
    inventory_mismatch: int  # confirmed units - (total - remaining); 0 when the row and the orders agree
    limit_violations: int  # users holding more than the per-user limit

    @property
    def ok(self) -> bool:
        return (
            self.oversold == 0 and self.inventory_mismatch == 0 and self.remaining >= 0 and self.limit_violations == 0
        )

    def problems(self) -> list[str]:
        found = []
        if self.oversold:
            found.append(f"OVERSOLD by {self.oversold} units ({self.confirmed_quantity} sold of {self.total})")
        if self.inventory_mismatch:
            found.append(
                f"inventory row disagrees with orders: {self.confirmed_quantity} confirmed units but "
                f"total - remaining = {self.total - self.remaining}"
            )
        if self.remaining < 0:
            found.append(f"remaining inventory is negative ({self.remaining})")
        if self.limit_violations:
            found.append(f"{self.limit_violations} users above the per-user limit")
        return found

    def as_json(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


async def audit_sale(conn: AsyncConnection, flash_sale_id: UUID) -> Audit:
    record = await audits.read(conn, flash_sale_id)
    if record is None:
        raise SaleNotFound(flash_sale_id)
    sold_by_row = record.total - record.remaining
    return Audit(
        total=record.total,
        remaining=record.remaining,
        orders=record.orders,
        confirmed_quantity=record.confirmed_quantity,
        oversold=max(0, record.confirmed_quantity - record.total),
        inventory_mismatch=record.confirmed_quantity - sold_by_row,
        limit_violations=record.limit_violations,
    )
