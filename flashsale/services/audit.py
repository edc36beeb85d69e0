"""The audit run after every load test: was anything oversold, is the inventory row consistent with the
confirmed orders, did any user get more than the per-user limit, is every order a client was told was created
(acknowledged: a 201, or an order returned in-process) in the database, and (with idempotency keys) does each key
have one order, the one its clients were answered with? For asynchronous orders (`serve --accept async`): has every
accepted order been settled, CONFIRMED or FAILED, with none left pending? For a sale sold through the stock gate
(`redis_gate`), once everything has settled: does the gate hold what the database holds (the units left, each
buyer's units)?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from uuid import UUID

from psycopg import AsyncConnection

from flashsale.domain import SaleNotFound
from flashsale.repositories import audits, gates


@dataclass(frozen=True)
class GateView:
    """What a sale's stock gate holds (read from Redis by `flashsale.stock_gate`): its epoch, the units it has left
    to admit, and the units it admitted to each buyer."""

    epoch: int
    stock: int
    buyers: dict[str, int]  # by the user's id as text (a gate may hold anything: what is not a user disagrees)


@dataclass(frozen=True)
class Audit:
    total: int
    remaining: int
    orders: int  # confirmed orders (rows)
    confirmed_quantity: int  # units in confirmed orders
    oversold: int  # units sold beyond the total inventory
    inventory_mismatch: int  # confirmed units - (total - remaining); 0 when the row and the orders agree
    limit_violations: int  # users holding more than the per-user limit
    # With the ids the clients were acknowledged (else None / 0):
    acknowledged: int | None = None  # distinct orders acknowledged to the clients
    acknowledged_missing: int = 0  # of those, not in the database as confirmed orders of the sale: LOST orders
    unacknowledged: int | None = None  # confirmed orders no client was told of (answer lost in a fault, earlier runs)
    duplicate_acknowledgements: int = 0  # acknowledgements of an order acknowledged before (replays among them)
    # With the idempotency keys the clients were answered for (else None / 0):
    keys: int | None = None  # keys answered with an order
    key_violations: int = 0  # keys without that order in the database, with several orders, or answered two ways
    # Asynchronous orders (see flashsale.services.settlement):
    pending: int = 0  # orders still PENDING: not settled (yet)
    failed: int = 0  # orders settled as FAILED (refused: sold out, ...); not a problem
    settlement_leftovers: int = 0  # orders a settlement placed but never moved onto their pending order
    accepted: int | None = None  # with the ids of the orders accepted (202): how many distinct
    accepted_unsettled: int = 0  # of those, not CONFIRMED or FAILED orders of the sale: lost or still pending
    # With the sale's stock gate (else None / 0):
    gate_stock: int | None = None  # the units the gate has left to admit
    gate_disagreements: int = 0  # the stock, and each buyer, on which the gate and the database disagree

    @property
    def ok(self) -> bool:
        return (
            self.oversold == 0
            and self.inventory_mismatch == 0
            and self.remaining >= 0
            and self.limit_violations == 0
            and self.acknowledged_missing == 0
            and self.key_violations == 0
            and self.pending == 0
            and self.settlement_leftovers == 0
            and self.accepted_unsettled == 0
            and self.gate_disagreements == 0
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
        if self.acknowledged_missing:
            found.append(
                f"{self.acknowledged_missing} of {self.acknowledged} acknowledged orders are not in the database"
            )
        if self.key_violations:
            found.append(f"{self.key_violations} idempotency keys do not have exactly the one order they answered")
        if self.pending:
            found.append(f"{self.pending} orders are still pending")
        if self.settlement_leftovers:
            found.append(f"{self.settlement_leftovers} settlement orders were not moved onto their pending order")
        if self.accepted_unsettled:
            found.append(f"{self.accepted_unsettled} of {self.accepted} accepted orders are not settled")
        if self.gate_disagreements:
            found.append(
                f"the stock gate disagrees with the database on {self.gate_disagreements} counts (units left: "
                f"{self.gate_stock} in the gate, {self.remaining} in the database; or buyers' units)"
            )
        return found

    def as_json(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


async def audit_sale(
    conn: AsyncConnection,
    flash_sale_id: UUID,
    *,
    acknowledged: bytes | Iterable[UUID] | None = None,
    keys: tuple[list[str], list[UUID]] | None = None,
    key_disagreements: int = 0,
    accepted: Iterable[UUID] | None = None,
    gate: GateView | None = None,
) -> Audit:
    """The audit of one sale; with `acknowledged` (order ids, or their 16-byte forms end to end), also check that
    every order a client was acknowledged is there; with `keys` (idempotency keys, and the order each was answered
    with), that each key has that order and no other (`key_disagreements`: keys the clients saw answered with two
    different orders, counted as they ran); with `accepted` (ids of orders answered 202), that each was settled;
    with `gate` (the sale's stock gate as `flashsale.stock_gate.read_view` reads it), that the gate and the
    database agree. Orders still pending always fail the audit: run it once the settlement is done."""
    record = await audits.read(conn, flash_sale_id)
    if record is None:
        raise SaleNotFound(flash_sale_id)
    sold_by_row = record.total - record.remaining
    acks = {}
    if acknowledged is not None:
        ids, total = distinct_ids(acknowledged)
        missing = await audits.count_missing(conn, flash_sale_id, ids) if ids else 0
        acks = {
            "acknowledged": len(ids),
            "acknowledged_missing": missing,
            "unacknowledged": record.orders - (len(ids) - missing),
            "duplicate_acknowledgements": total - len(ids),
        }
    if keys is not None:
        key_list, answered = keys
        mismatched = await audits.count_key_mismatches(conn, key_list, answered) if key_list else 0
        several = await audits.count_keys_with_several_orders(conn, flash_sale_id)
        acks |= {"keys": len(key_list), "key_violations": mismatched + several + key_disagreements}
    pending, failed, leftovers = await audits.count_settlement_states(conn, flash_sale_id)
    acks |= {"pending": pending, "failed": failed, "settlement_leftovers": leftovers}
    if accepted is not None:
        accepted_ids = list(dict.fromkeys(accepted))
        unsettled = await audits.count_unsettled(conn, flash_sale_id, accepted_ids) if accepted_ids else 0
        acks |= {"accepted": len(accepted_ids), "accepted_unsettled": unsettled}
    if gate is not None:
        held = {str(user): units for user, units in await (await gates.send_held_by_buyers(conn, flash_sale_id)).all()}
        buyers = held.keys() | gate.buyers.keys()
        disagreeing = sum(held.get(user, 0) != gate.buyers.get(user, 0) for user in buyers)
        acks |= {"gate_stock": gate.stock, "gate_disagreements": (gate.stock != record.remaining) + disagreeing}
    return Audit(
        total=record.total,
        remaining=record.remaining,
        orders=record.orders,
        confirmed_quantity=record.confirmed_quantity,
        oversold=max(0, record.confirmed_quantity - record.total),
        inventory_mismatch=record.confirmed_quantity - sold_by_row,
        limit_violations=record.limit_violations,
        **acks,
    )


def distinct_ids(acknowledged: bytes | Iterable[UUID]) -> tuple[list[UUID], int]:
    """The distinct ids among `acknowledged`, and how many there were in all."""
    if isinstance(acknowledged, bytes | bytearray | memoryview):
        if len(acknowledged) % 16:
            raise ValueError("acknowledged ids must be 16 bytes each")
        import numpy as np  # here, not at every `flashsale` start

        raw = np.frombuffer(acknowledged, dtype="V16")
        return [UUID(bytes=value.tobytes()) for value in np.unique(raw)], len(raw)
    every = list(acknowledged)
    return list(dict.fromkeys(every)), len(every)
