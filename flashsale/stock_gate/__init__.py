"""The stock gate: every order of a sale decided in Redis by one Lua script, PostgreSQL kept as the record (the
`redis_gate` strategy drives it).

Keys (`keys.py`), per sale, all tagged with the sale's id: `state` (epoch, stock, per-user limit, the window),
`buyers` (units admitted per user), `keys` (idempotency key -> the order it admitted), `rebuilding` (a lock).

Scripts (`lua/`), each atomic:
- `decide`: a key that already admitted an order answers with it; else the window, the stock, the per-user limit;
  if all pass, the units are taken and the buyer and key recorded (`admitted`, with the gate's epoch). Refusals
  end here: the database never hears of them. No `state`: `not_ready`, and nobody is admitted.
- `give_back`: an admitted order whose write surely failed (the server reported an error, or nothing was sent)
  gives its units, count and key back, to the gate of the epoch that admitted it only.
- `invalidate`: drops the gate of an epoch. Used when the database refused an admitted order (the gate was wrong,
  or rebuilt since) and when a write ended without telling whether it committed (cancelled, connection lost):
  the next order rebuilds the gate from what did commit.
- `lock`, `install` and `unlock`: the rebuild's.

Rebuild, and why it cannot admit against a half-built or stale gate. The first order that finds no gate takes the
sale's `rebuilding` lock (`lock`: SET NX PX with a random token, only while the gate is still missing, so that an
order that saw it missing does not rebuild it again once another has; the others wait and decide again). Under
it, one transaction moves the sale to its next `gate_epoch` (migration 0006) and reads the sale row's units, the
window, each buyer's units and the keys; the UPDATE holds the sale row's lock, so the reads see every order written
before it. `install` then writes the whole gate in one script, only if the lock is still the token's and no newer
epoch is in place.
Each admitted order is written with the epoch it was admitted at, and the database writes it only while the sale is
still at that epoch: an order admitted by the gate before a rebuild (Redis restarted empty, or the gate dropped) and
written after it is refused and decided again by the new gate. So the gate counts exactly the orders the database
holds, plus those admitted since its epoch and not yet written.

The write re-checks every rule (`placements.send_take_admitted`), so a wrong gate can cost a refusal, never an
oversold unit or a second unit over the limit.
"""

from __future__ import annotations

from uuid import UUID

from flashsale.kv import connection
from flashsale.services.audit import GateView
from flashsale.stock_gate.decisions import Admitted, Decision, NotReady, Replayed
from flashsale.stock_gate.gate import StockGate
from flashsale.stock_gate.keys import GateKeys
from flashsale.stock_gate.snapshot import GateSnapshot, take_snapshot


async def read_view(flash_sale_id: UUID, url: str | None = None) -> GateView | None:
    """What the sale's gate holds on the Redis at `url` (default: the configured one), for the audit; None if it
    has no gate."""
    gate = StockGate(connection.connect(url, decode_responses=True))
    try:
        return await gate.view(flash_sale_id)
    finally:
        await gate.aclose()


__all__ = [
    "Admitted",
    "Decision",
    "GateKeys",
    "GateSnapshot",
    "GateView",
    "NotReady",
    "Replayed",
    "StockGate",
    "read_view",
    "take_snapshot",
]
