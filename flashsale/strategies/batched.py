"""Admission control and asynchronous processing: a bounded queue in front of a worker that settles orders in
batches, one transaction (one lock, one inventory update, one multi-row insert) per batch."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

from flashsale.domain import (
    Clock,
    DomainError,
    FlashSale,
    IdempotencyKeyTaken,
    Order,
    OrderStatus,
    PlaceOrder,
    SaleNotFound,
    UserNotFound,
    utc_now,
)
from flashsale.repositories import flash_sales, orders
from flashsale.strategies.base import PGBENCH_VARIANTS, OrderStrategy, PgbenchPlan, Rejected
from flashsale.strategies.pipelined import pipelined_transaction


class _Ticket(NamedTuple):
    command: PlaceOrder
    answer: asyncio.Future[Order]


class Batched(OrderStrategy):
    """Parameters: `batch_size` B (default 100), the most orders one transaction settles; `queue_size` (default
    1000), the orders that may wait, beyond which callers get `Rejected`; `workers` (default 1), batches settled at
    once (each takes the sale row lock in turn); `retry_after_s` (default 1.0), the hint given with `Rejected`;
    `clock` (the time the sale window is checked against).

    `place_order` starts the workers on first use if `start` was not called; call `stop` to end them.
    Counters: `batches`, `batched_orders` (their mean is the batch size reached), `rejected` (queue full).
    """

    name = "batched"
    safe = True
    summary = (
        "Admission control with asynchronous processing. place_order puts the order in a bounded in-process "
        "queue (full queue: `rejected`, HTTP 503 with Retry-After) and awaits its answer. A worker takes up to B "
        "waiting orders and settles them in one transaction: lock the sale row FOR UPDATE and read the batch's "
        "users' confirmed units (one round trip), decide every order in arrival order with the same domain rules "
        "as `pessimistic`, then one UPDATE of the inventory, one multi-row INSERT and COMMIT (a second round trip), "
        "and answer each caller with its own outcome. Lock, round trips and commit flush are paid once per batch "
        "instead of once per order, which is where its throughput comes from; batches form by themselves while "
        "the previous one settles. Costs: each order waits for its batch (latency grows with load), the queue is "
        "state in one process (a crash loses the waiting orders, which were never confirmed), and one bad batch "
        "statement fails every order in it."
    )
    pgbench_note = (
        "a batch of consecutive users, whole or none; BEGIN alone; the units are read by the UPDATE and INSERT"
    )

    def __init__(
        self,
        *,
        batch_size: int = 100,
        queue_size: int = 1000,
        workers: int = 1,
        retry_after_s: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(clock=clock)
        for label, value in (("batch_size", batch_size), ("queue_size", queue_size), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a whole number, 1 or more, got {value!r}")
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.workers = workers
        self.retry_after_s = retry_after_s
        self._queue: asyncio.Queue[_Ticket] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def pgbench_plan(self, vus: int, *, variant: str = PGBENCH_VARIANTS[0]) -> PgbenchPlan:
        """One pgbench client per worker, each transaction a full batch: at most `vus` orders can be waiting."""
        batch = min(self.batch_size, vus)
        return dataclasses.replace(
            super().pgbench_plan(vus, variant=variant),
            clients=self.workers,
            variables={"batch": str(batch)},
            orders_per_transaction=batch,
        )

    async def start(self, pool: AsyncConnectionPool) -> None:
        if self._tasks:
            return
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._tasks = [
            asyncio.create_task(self._work(pool), name=f"{self.name}-worker-{i}") for i in range(self.workers)
        ]

    async def stop(self) -> None:
        """Refuse the orders still queued (`Rejected`), let the batches in flight finish, end the workers."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()  # an idle worker ends at once; a busy one finishes its batch first (see _work)
        while self._queue is not None and not self._queue.empty():
            _answer(self._queue.get_nowait().answer, Rejected("the order queue was stopped"))
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def queued(self) -> int:
        """Orders waiting in the queue (not yet taken into a batch)."""
        return 0 if self._queue is None else self._queue.qsize()

    async def place_order(self, pool: AsyncConnectionPool, command: PlaceOrder) -> Order:
        if not self._tasks:
            await self.start(pool)
        answer = asyncio.get_running_loop().create_future()
        assert self._queue is not None  # start() made it
        try:
            self._queue.put_nowait(_Ticket(command, answer))
        except asyncio.QueueFull:
            self.counters["rejected"] += 1
            raise Rejected(
                f"the order queue is full ({self.queue_size} orders waiting)", retry_after_s=self.retry_after_s
            ) from None
        return await answer

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        """A batch of one, settled on this connection (no queue)."""
        (outcome,) = await self.settle(conn, [command])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _work(self, pool: AsyncConnectionPool) -> None:
        queue = self._queue
        assert queue is not None  # start() made it before the workers
        while True:
            batch = [await queue.get()]
            while len(batch) < self.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [ticket for ticket in batch if not ticket.answer.done()]  # callers that gave up
            if batch:
                # Shielded: stopping must not cut a transaction short, or its callers would never learn its outcome.
                settling = asyncio.ensure_future(self._settle_batch(pool, batch))
                try:
                    await asyncio.shield(settling)
                except asyncio.CancelledError:
                    await settling
                    raise

    async def _settle_batch(self, pool: AsyncConnectionPool, batch: list[_Ticket]) -> None:
        try:
            async with pool.connection() as conn:
                try:
                    outcomes = await self.settle(conn, [ticket.command for ticket in batch])
                except errors.UniqueViolation:
                    # A key of the batch got its order from elsewhere between the batch's read of the keys and its
                    # INSERT (another process, another sale): settle again, which now finds it.
                    outcomes = await self.settle(conn, [ticket.command for ticket in batch])
        except Exception as exc:  # the database failed the whole batch: every caller hears why
            outcomes = [exc] * len(batch)
        for ticket, outcome in zip(batch, outcomes, strict=True):
            _answer(ticket.answer, outcome)

    async def settle(self, conn: AsyncConnection, commands: list[PlaceOrder]) -> list[Order | Exception]:
        """Settle these orders, one transaction per sale among them, and return each one's outcome in order."""
        outcomes: list[Order | Exception | None] = [None] * len(commands)
        by_sale: dict[UUID, list[int]] = {}
        for i, command in enumerate(commands):
            by_sale.setdefault(command.flash_sale_id, []).append(i)
        for sale_id, positions in by_sale.items():
            settled = await self._settle_sale(conn, sale_id, [commands[i] for i in positions])
            for i, outcome in zip(positions, settled, strict=True):
                outcomes[i] = outcome
        self.counters["batches"] += 1
        self.counters["batched_orders"] += len(commands)
        return [outcome for outcome in outcomes if outcome is not None]  # every position was settled

    async def _settle_sale(
        self, conn: AsyncConnection, sale_id: UUID, commands: list[PlaceOrder]
    ) -> list[Order | Exception]:
        keys = [c.idempotency_key for c in commands if c.idempotency_key is not None]
        ids = new_order_ids(len(commands))  # before the lock: nothing the lock holder need wait for
        async with pipelined_transaction(conn) as tx:
            locked = await flash_sales.send_get_for_update(tx, sale_id)
            holdings = await orders.send_bought_by_users(tx, sale_id, list({c.user_id for c in commands}))
            # Keys that already have an order: read under the sale's lock, so that the multi-row INSERT below cannot
            # meet one of them (it would fail the whole batch).
            used = await orders.send_get_by_idempotency_keys(tx, keys) if keys else None
            sale = await locked.one()
            if sale is None:
                return [SaleNotFound(sale_id) for _ in commands]
            bought = dict(await holdings.all())
            taken = {key for key, _ in await used.all()} if used is not None else set()
            outcomes, accepted = decide(sale, commands, bought, now=self.clock(), taken_keys=taken, ids=ids)
            if accepted:
                await flash_sales.decrement_remaining(tx, sale_id, sum(c.quantity for c in accepted.values()))
                inserted = await orders.send_insert_many(
                    tx,
                    flash_sale_id=sale_id,
                    ids=list(accepted),
                    user_ids=[c.user_id for c in accepted.values()],
                    quantities=[c.quantity for c in accepted.values()],
                    status=OrderStatus.CONFIRMED,
                    idempotency_keys=[c.idempotency_key for c in accepted.values()],
                )
        if not accepted:
            return [outcome for outcome in outcomes if isinstance(outcome, Exception)]  # all refused
        placed = {order.id: order for order in await inserted.all()}
        return [placed[outcome] if isinstance(outcome, UUID) else outcome for outcome in outcomes]


def decide(
    sale: FlashSale,
    commands: list[PlaceOrder],
    bought: dict[UUID, int],
    *,
    now: datetime,
    taken_keys: set[str] | None = None,
    ids: list[UUID] | None = None,
) -> tuple[list[UUID | Exception], dict[UUID, PlaceOrder]]:
    """Judge the orders one after the other, as if each had locked the sale in turn: the units and the users'
    holdings accepted so far count against the ones after. Returns each one's outcome (the id its order will get,
    or the refusal) and the accepted orders by id. `bought` holds only existing users.

    An order whose idempotency key is in `taken_keys` (keys with an order already), or was accepted earlier in
    this batch, places nothing: its outcome is `IdempotencyKeyTaken`, which the caller answers with that order.

    `ids`: the ids the accepted orders take, in turn (at least one per command; default: fresh `uuid4`s)."""
    outcomes: list[UUID | Exception] = []
    accepted: dict[UUID, PlaceOrder] = {}
    held = dict(bought)
    taken = set(taken_keys or ())
    fresh = iter(ids if ids is not None else new_order_ids(len(commands)))
    for command in commands:
        if command.idempotency_key in taken:
            outcomes.append(IdempotencyKeyTaken(command.idempotency_key))
            continue
        try:
            sale.check_order(quantity=command.quantity, already_bought=held.get(command.user_id, 0), now=now)
            if command.user_id not in held:
                raise UserNotFound(command.user_id)
        except DomainError as exc:
            outcomes.append(exc)
            continue
        order_id = next(fresh)
        accepted[order_id] = command
        outcomes.append(order_id)
        if command.idempotency_key is not None:
            taken.add(command.idempotency_key)
        held[command.user_id] += command.quantity
        sale = dataclasses.replace(sale, remaining_inventory=sale.remaining_inventory - command.quantity)
    return outcomes, accepted


def new_order_ids(count: int) -> list[UUID]:
    """`count` random (version 4) UUIDs from one read of the system's random source (`uuid.uuid4` reads it once
    an id: a system call each, which a batch of 100 would pay while it holds the sale's lock)."""
    random = os.urandom(16 * count)
    return [uuid.UUID(bytes=random[i : i + 16], version=4) for i in range(0, 16 * count, 16)]


def _answer(answer: asyncio.Future, outcome: object) -> None:
    if answer.done():
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
