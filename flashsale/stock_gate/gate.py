"""The stock gates of every sale on one Redis: what the strategy asks of Redis, one script call each."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from redis.asyncio import Redis

from flashsale.domain import PlaceOrder
from flashsale.services.audit import GateView
from flashsale.stock_gate import scripts
from flashsale.stock_gate.decisions import Admitted, Decision, read_decision
from flashsale.stock_gate.keys import GateKeys
from flashsale.stock_gate.snapshot import GateSnapshot

REBUILD_LOCK_MS = 5000  # a rebuild that dies holding the lock holds up its sale's orders this long at most
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(at: datetime) -> int:
    """`at` as the scripts compare instants: whole microseconds since 1970 (exact, unlike a float timestamp)."""
    return (at - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class RebuildTurn:
    token: str | None  # the rebuild lock's token if the caller holds it now: rebuild, then install or unlock
    built: bool  # the gate is there: nothing to rebuild


class StockGate:
    """`client` must decode replies (`decode_responses=True`)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._scripts = scripts.register(client)

    async def decide(self, command: PlaceOrder, *, order_id: UUID, at: datetime) -> Decision:
        keys = GateKeys.of(command.flash_sale_id)
        args: list[str | int] = [
            microseconds(at),
            str(command.user_id),
            command.quantity,
            command.idempotency_key or "",
            str(order_id),
        ]
        reply = await self._scripts["decide"](keys=keys.gate, args=args)
        return read_decision(reply, command, order_id=order_id, at=at)

    async def give_back(self, command: PlaceOrder, admitted: Admitted) -> bool:
        """Give an admitted order's units, buyer count and key back (to the gate that admitted it only)."""
        args: list[str | int] = [
            admitted.epoch,
            str(command.user_id),
            command.quantity,
            command.idempotency_key or "",
            str(admitted.order_id),
        ]
        return bool(await self._scripts["give_back"](keys=GateKeys.of(command.flash_sale_id).gate, args=args))

    async def invalidate(self, flash_sale_id: UUID, epoch: int) -> bool:
        """Drop the sale's gate if it is still the one built at `epoch`: the next order rebuilds it."""
        return bool(await self._scripts["invalidate"](keys=GateKeys.of(flash_sale_id).gate, args=[epoch]))

    async def lock_rebuild(self, flash_sale_id: UUID, *, even_if_built: bool = False) -> RebuildTurn:
        """The sale's rebuild lock for the caller (its token), unless the gate is built (and not `even_if_built`)
        or another rebuild holds the lock."""
        keys = GateKeys.of(flash_sale_id)
        token = secrets.token_hex(16)
        reply = await self._scripts["lock"](
            keys=[keys.state, keys.rebuild_lock], args=[token, REBUILD_LOCK_MS, int(even_if_built)]
        )
        return RebuildTurn(token=token if reply == "locked" else None, built=reply == "built")

    async def install(self, flash_sale_id: UUID, snapshot: GateSnapshot, token: str) -> bool:
        """Install the gate rebuilt as `snapshot`, whole, if the rebuild lock is still `token`'s and no newer gate
        is in place; releases the lock."""
        keys = GateKeys.of(flash_sale_id)
        args: list[str | int] = [
            token,
            snapshot.epoch,
            snapshot.stock,
            snapshot.per_user_limit,
            microseconds(snapshot.opens_at),
            microseconds(snapshot.closes_at),
            len(snapshot.buyers),
        ]
        for user, units in snapshot.buyers.items():
            args += [str(user), units]
        for key, order_id in snapshot.keys.items():
            args += [key, str(order_id)]
        return bool(await self._scripts["install"](keys=[*keys.gate, keys.rebuild_lock], args=args))

    async def unlock_rebuild(self, flash_sale_id: UUID, token: str) -> None:
        await self._scripts["unlock"](keys=[GateKeys.of(flash_sale_id).rebuild_lock], args=[token])

    async def is_built(self, flash_sale_id: UUID) -> bool:
        return bool(await self.client.exists(GateKeys.of(flash_sale_id).state))

    async def view(self, flash_sale_id: UUID) -> GateView | None:
        """What the sale's gate holds (stock left, units per buyer), read in one transaction; None if it has no
        gate."""
        keys = GateKeys.of(flash_sale_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.state)
            pipe.hgetall(keys.buyers)
            state, buyers = await pipe.execute()
        if not state:
            return None
        return GateView(
            epoch=int(state["epoch"]),
            stock=int(state["stock"]),
            buyers={user: int(units) for user, units in buyers.items()},
        )

    async def aclose(self) -> None:
        await self.client.aclose()
