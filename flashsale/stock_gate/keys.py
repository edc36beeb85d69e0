"""Where a sale's stock gate lives in Redis. Every key of a sale carries the sale's id as its hash tag (`{...}`), so
that on a Redis Cluster they share one slot, as a script that touches them together requires."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

PREFIX = "flashsale:gate"


@dataclass(frozen=True)
class GateKeys:
    state: str  # hash: epoch, stock, limit, opens, closes (microseconds since 1970); present once the gate is built
    buyers: str  # hash: user id -> units admitted
    keys: str  # hash: idempotency key -> the id of the order it admitted
    rebuild_lock: str  # string: the token of the rebuild under way, with an expiry

    @classmethod
    def of(cls, flash_sale_id: UUID) -> GateKeys:
        return cls.tagged(str(flash_sale_id))

    @classmethod
    def tagged(cls, sale: str) -> GateKeys:
        """The keys of the sale written `sale` (its id, or a placeholder for one, as in a reference plan)."""
        tag = f"{PREFIX}:{{{sale}}}"
        return cls(f"{tag}:state", f"{tag}:buyers", f"{tag}:keys", f"{tag}:rebuilding")

    @property
    def gate(self) -> list[str]:
        """The keys that make up the gate (what the decide, give-back and invalidate scripts take)."""
        return [self.state, self.buyers, self.keys]
