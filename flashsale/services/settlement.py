"""Asynchronous orders (`serve --accept async`, the original's phases 4 and 5): accepting an order stores it as
PENDING and answers at once; workers settle it later, through the configured strategy, into CONFIRMED or FAILED
(with the refusal's code as its reason). Stock is taken at settlement only.

    placed = await settlement.accept(pool, command)        # PENDING, or the order a retry's key already has
    order = await settlement.settle(strategy, pool, order_id)   # CONFIRMED / FAILED, or None if not pending

How one pending order X is settled, reusing the strategy's own transaction unchanged:

1. Claim: on connection A, BEGIN; `SELECT ... WHERE id = X AND status = 'PENDING' FOR UPDATE SKIP LOCKED`. No row:
   X is settled already, or another settler holds it: nothing to do.
2. Place: the strategy places X's order (user, sale, quantity) with the idempotency key `settle:X`, through
   `idempotency.place_order`, on connections of its own: its transaction takes the stock and inserts an order Y
   holding the key, and commits, as for any order. A refusal (sold out, limit, sale closed, unknown user) is a
   domain error.
3. Mark, on A in the claim's transaction: refused: X becomes FAILED with the refusal's code; placed: one statement
   deletes Y and turns X CONFIRMED (`settlements.confirm`), so the sale's confirmed units stay those of Y. COMMIT.

Why each pending order is settled exactly once, whatever dies when:

- Stock is taken at most once for X: only Y takes stock for X, and Y holds the key `settle:X` under the unique
  constraint of migration 0003, so a second placement for X can never commit; `idempotency.place_order` answers
  it with Y instead (a replay), whose units were taken once.
- X is marked at most once: the marks only change a PENDING row, and only under the claim; the row lock makes two
  settlers take turns (SKIP LOCKED: the second one skips X), and once the first commits, X is no longer pending.
- Nothing is lost: until the mark commits, X stays PENDING in the database. If the service dies (SIGKILL) or the
  database restarts during 1-3, the claim's transaction is rolled back (its connection is gone) and the lock
  released; Y may or may not have committed. The next settler (the running workers' sweep, or the next start's)
  claims X again; step 2 then either places it (Y had not committed) or replays Y (it had), and step 3 marks X.
  So every PENDING order ends CONFIRMED or FAILED once, and the inventory row always agrees with the confirmed
  orders (Y counts while it exists, X once Y is gone, never both: the swap is one statement).

Keys starting with `settle:` are the settlers' own; the service refuses them from clients.

`Settler` runs the settlement for a service: `schedule(X)` puts X's settlement in the order queue (the queue's
workers carry it out), and a sweep (at start, then every `sweep_interval_s`) schedules the orders still pending in
the database that no worker of this process holds: those of a service that died, those whose settlement failed on
a lost database, and those accepted while the queue was full. A settlement that fails for any reason other than a
refusal leaves X pending for the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from psycopg import errors
from psycopg_pool import AsyncConnectionPool

from flashsale.admission import OrderQueue, QueueFull, QueueStopped
from flashsale.domain import DomainError, Order, PlaceOrder, SaleNotFound, UserNotFound
from flashsale.repositories import orders, settlements
from flashsale.services import idempotency
from flashsale.strategies import OrderStrategy

SETTLEMENT_KEY_PREFIX = "settle:"
SWEEP_INTERVAL_S = 1.0

log = logging.getLogger("flashsale.services.settlement")


def settlement_key(order_id: UUID) -> str:
    return f"{SETTLEMENT_KEY_PREFIX}{order_id}"


async def accept(pool: AsyncConnectionPool, command: PlaceOrder) -> idempotency.Placement:
    """Store the order as PENDING; with a key that already has an order, that order (`replayed`), under the same
    policy as synchronous orders (`idempotency.at_most_once`)."""
    key = command.idempotency_key
    async with pool.connection() as conn:

        async def insert() -> Order:
            try:
                return await settlements.insert_pending(
                    conn,
                    user_id=command.user_id,
                    flash_sale_id=command.flash_sale_id,
                    quantity=command.quantity,
                    idempotency_key=key,
                )
            except errors.ForeignKeyViolation as exc:
                if "flash_sale" in (exc.diag.constraint_name or ""):
                    raise SaleNotFound(command.flash_sale_id) from exc
                raise UserNotFound(command.user_id) from exc

        if key is None:
            return idempotency.Placement(await insert(), replayed=False)
        return await idempotency.at_most_once(command, lambda: orders.get_by_idempotency_key(conn, key), insert)


async def refuse(pool: AsyncConnectionPool, command: PlaceOrder, refusal: DomainError) -> idempotency.Placement:
    """Refuse the order at acceptance (`refusal`, e.g. its sale is not open), unless its key already has an order:
    a retry is answered with that order, as `accept` would answer it."""
    key = command.idempotency_key
    if key is None:
        raise refusal
    async with pool.connection() as conn:

        async def refused() -> Order:
            raise refusal

        return await idempotency.at_most_once(command, lambda: orders.get_by_idempotency_key(conn, key), refused)


async def settle(strategy: OrderStrategy, pool: AsyncConnectionPool, order_id: UUID) -> Order | None:
    """Settle one pending order (claim, place, mark: see the module's notes); None when it is not pending or
    another settler holds it. Errors other than the sale's refusals propagate, leaving the order pending."""
    async with pool.connection() as conn, conn.transaction():
        pending = await settlements.claim(conn, order_id)
        if pending is None:
            return None
        key = settlement_key(order_id)
        command = PlaceOrder(pending.user_id, pending.flash_sale_id, pending.quantity, idempotency_key=key)
        try:
            await idempotency.place_order(strategy, pool, command)
        except DomainError as refused:
            return await settlements.fail(conn, order_id, refused.code)
        confirmed = await settlements.confirm(conn, order_id, key)
        if confirmed is None:  # pragma: no cover - the claim guarantees both rows
            raise RuntimeError(f"order {order_id} was placed but could not be confirmed")
        return confirmed


class Settler:
    def __init__(
        self,
        strategy: OrderStrategy,
        pool: AsyncConnectionPool,
        queue: OrderQueue,
        *,
        sweep_interval_s: float = SWEEP_INTERVAL_S,
        min_age_s: float = 0.0,
    ) -> None:
        """`min_age_s`: the sweep leaves orders younger than this to others (the shared stream's settlers)."""
        self.strategy, self.pool, self.queue = strategy, pool, queue
        self.sweep_interval_s = sweep_interval_s
        self.min_age_s = min_age_s
        self._held: set[UUID] = set()  # scheduled or being settled by this process
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="settlement-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def schedule(self, order_id: UUID) -> bool:
        """Have a queue worker settle the order; False when the queue is full (the sweep comes back to it) or
        stopped (the next start's sweep does)."""
        if order_id in self._held:
            return True
        try:
            self.queue.submit(lambda: self._settle(order_id))
        except (QueueFull, QueueStopped):  # stopped: the order stays pending for the next start's sweep
            return False
        self._held.add(order_id)
        return True

    async def sweep(self, *, older_than_s: float = 0.0) -> int:
        """Schedule the orders still pending that this process does not hold; how many were scheduled."""
        if self.queue.room == 0:
            return 0
        async with self.pool.connection() as conn:
            ids = await settlements.pending_ids(
                conn, limit=self.queue.room + len(self._held), older_than_s=max(older_than_s, self.min_age_s)
            )
        fresh = [order_id for order_id in ids if order_id not in self._held]
        return sum(1 for order_id in fresh if self.schedule(order_id))

    async def _settle(self, order_id: UUID) -> None:
        try:
            await settle(self.strategy, self.pool, order_id)
        except Exception as exc:  # the database, a pool timeout, the strategy busy: the order stays pending
            log.warning("settlement postponed", extra={"fields": {"order_id": str(order_id), "cause": repr(exc)}})
        finally:
            self._held.discard(order_id)

    async def _sweep_forever(self) -> None:
        older_than_s = 0.0  # at start: everything pending (a previous run's orders)
        while True:
            try:
                scheduled = await self.sweep(older_than_s=older_than_s)
                if scheduled and older_than_s == 0.0:
                    log.info("settling pending orders", extra={"fields": {"orders": scheduled}})
                older_than_s = self.sweep_interval_s  # then only those no worker took in time
            except Exception as exc:
                log.warning("settlement sweep failed", extra={"fields": {"cause": repr(exc)}})
            await asyncio.sleep(self.sweep_interval_s)
