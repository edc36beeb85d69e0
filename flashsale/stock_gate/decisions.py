"""What the gate's decide script answers, as Python values: an admission, a replay, a gate to rebuild first, or
the domain error that refuses the order. Plain data: nothing here talks to Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from flashsale.domain import DomainError, PerUserLimitExceeded, PlaceOrder, SaleNotActive, SoldOut


@dataclass(frozen=True)
class Admitted:
    """The gate took the order's units at `epoch`; the order is to be written as `order_id`, decided at `at`."""

    epoch: int
    order_id: UUID
    at: datetime


@dataclass(frozen=True)
class Replayed:
    """The order's idempotency key already admitted an order: this one."""

    order_id: UUID


@dataclass(frozen=True)
class NotReady:
    """The sale has no gate in Redis: it must be rebuilt from the database before anyone is admitted."""


Decision = Admitted | Replayed | NotReady | DomainError


def read_decision(reply: Sequence[str | int], command: PlaceOrder, *, order_id: UUID, at: datetime) -> Decision:
    """The decision `reply` (the decide script's answer for `command`, sent with `order_id` at `at`) stands for."""
    outcome, *figures = reply
    match outcome:
        case "admitted":
            return Admitted(epoch=int(figures[0]), order_id=order_id, at=at)
        case "replayed":
            return Replayed(UUID(str(figures[0])))
        case "not_ready":
            return NotReady()
        case "sale_not_active":
            return SaleNotActive(command.flash_sale_id)
        case "sold_out":
            return SoldOut(command.flash_sale_id, remaining=int(figures[0]), requested=command.quantity)
        case "per_user_limit_exceeded":
            return PerUserLimitExceeded(limit=int(figures[0]), already=int(figures[1]), requested=command.quantity)
    raise ValueError(f"the stock gate answered {list(reply)!r}")
