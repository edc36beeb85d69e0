"""The sale's inventory split over K rows, so that K orders can hold a row lock at the same time."""

from __future__ import annotations

import dataclasses
from uuid import UUID

from psycopg import AsyncConnection, errors

from flashsale.domain import Order, PlaceOrder, SaleNotFound, UserNotFound
from flashsale.repositories import flash_sales, locks, orders, placements, shards
from flashsale.strategies import refusals
from flashsale.strategies.base import OrderStrategy
from flashsale.strategies.pipelined import pipelined_transaction


class Sharded(OrderStrategy):
    """Parameters: `clock` (the time the sale window is checked against, by the statement and by the slow path).
    The number of shards K is a property of the scenario (`scenario.reset(shards=K)`, `flashsale db reset --shards
    K`), not of the strategy.

    Counters: `free_shard` (orders served by a shard nobody held), `waited_for_shard` (every shard with stock was
    held, so the order queued on one), `slow_path` (settled under every shard's lock: first orders, fragmented
    stock near the end, refusals), `spread` (times the sale row's units were moved into the shards).
    """

    name = "sharded"
    safe = True
    summary = (
        "Inventory sharding: the sale's units live in K rows of flash_sale_shards (K = the scenario's --shards, "
        "default 8; the first order moves the sale row's units into them). An order takes a per-(sale, user) "
        "advisory lock (for an exact limit check), then one statement picks the shards in random order, locks the "
        "first free one holding enough units FOR UPDATE SKIP LOCKED, decrements it and inserts the order, all in "
        "one pipelined round trip. If every such shard is held, the same statement queues on one. If none holds "
        "enough, an unlocked read of all shards answers sold out (or another refusal) when together they are "
        "short, and otherwise a slow path locks every shard in order and takes the units from several. Up to K "
        "orders hold a lock and commit at once, so the hot-row bound becomes K / (statement + commit flush); "
        "the costs are K rows to keep, a per-user lock, and refusals that need extra reads."
    )
    pgbench_matched = False
    pgbench_note = (
        "one statement picks a free shard, else queues on one (the driver: a second pipeline); fast path only; "
        "now() for the clock"
    )

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        try:
            for skip_locked, counter in ((True, "free_shard"), (False, "waited_for_shard")):
                async with pipelined_transaction(conn) as tx:
                    await locks.lock_buyer(tx, command.flash_sale_id, command.user_id)
                    taken = await placements.send_take_shard(tx, command, now=self.clock(), skip_locked=skip_locked)
                if (order := await taken.one()) is not None:
                    self.counters[counter] += 1
                    return order
            await refusals.explain(conn, command, clock=self.clock, with_shards=True)
            self.counters["slow_path"] += 1
            return await self.settle_slowly(conn, command)
        except errors.ForeignKeyViolation as exc:
            raise UserNotFound(command.user_id) from exc

    async def prepare_pgbench(self, conn: AsyncConnection, flash_sale_id: UUID) -> None:
        """Move the sale row's units into the shards (the script has no slow path to do it)."""
        async with pipelined_transaction(conn) as tx:
            sale = await flash_sales.get_for_no_key_update(tx, flash_sale_id)
            if sale is None:
                raise SaleNotFound(flash_sale_id)
            held = {shard.shard: shard.remaining for shard in await shards.lock_all(tx, sale.id)}
            if held and sale.remaining_inventory:
                await shards.set_remaining(tx, sale.id, spread(sale.remaining_inventory, held))
                await flash_sales.set_remaining(tx, sale.id, 0)
                self.counters["spread"] += 1

    async def settle_slowly(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        """Lock the sale row (against other slow paths) and every shard (in shard order, so that slow paths cannot
        deadlock; fast paths never wait while holding a shard); decide, then write: move the row's units into the
        shards if they are still there, take the order's units from as many shards as it needs, insert the order,
        commit. Nothing is written before the order is known to pass."""
        async with pipelined_transaction(conn) as tx:
            await locks.lock_buyer(tx, command.flash_sale_id, command.user_id)
            sale = await flash_sales.get_for_no_key_update(tx, command.flash_sale_id)
            if sale is None:
                raise SaleNotFound(command.flash_sale_id)
            bought = await orders.confirmed_quantity(tx, user_id=command.user_id, flash_sale_id=command.flash_sale_id)
            held = {shard.shard: shard.remaining for shard in await shards.lock_all(tx, sale.id)}
            in_row = sale.remaining_inventory
            spreading = bool(held) and in_row > 0
            units = spread(in_row, held) if spreading else held
            if spreading:
                in_row = 0
            available = dataclasses.replace(sale, remaining_inventory=in_row + sum(units.values()))
            available.check_order(quantity=command.quantity, already_bought=bought, now=self.clock())
            taken, from_row = take(command.quantity, units)
            if spreading:
                await flash_sales.set_remaining(tx, sale.id, 0)
                self.counters["spread"] += 1
            if changed := {shard: units[shard] - taken.get(shard, 0) for shard in (units if spreading else taken)}:
                await shards.set_remaining(tx, sale.id, changed)
            if from_row:  # a sale without shards: its row is the only one
                await flash_sales.decrement_remaining(tx, sale.id, from_row)
            inserted = await orders.send_insert_confirmed(tx, command)
        return await inserted.only()


def spread(units: int, shards: dict[int, int]) -> dict[int, int]:
    """Add `units` to the shards as evenly as possible (the first shards get one more when it does not divide)."""
    share, extra = divmod(units, len(shards))
    return {shard: held + share + (i < extra) for i, (shard, held) in enumerate(sorted(shards.items()))}


def take(quantity: int, shards: dict[int, int]) -> tuple[dict[int, int], int]:
    """Units to take from each shard, fullest first, and what is left to take from the sale row."""
    taken: dict[int, int] = {}
    for shard, held in sorted(shards.items(), key=lambda item: -item[1]):
        if quantity == 0 or held == 0:
            break
        taken[shard] = min(held, quantity)
        quantity -= taken[shard]
    return taken, quantity
