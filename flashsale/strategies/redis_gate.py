"""The stock gate: one Lua script in Redis decides every order, and only the admitted ones reach PostgreSQL (the
keys, the scripts, the rebuild and its fence are in `flashsale.stock_gate`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests
from redis.exceptions import RedisError

from flashsale.db.guard import DatabaseDown
from flashsale.domain import (
    Clock,
    DomainError,
    IdempotencyKeyTaken,
    Order,
    PlaceOrder,
    SaleNotFound,
    UserNotFound,
    utc_now,
)
from flashsale.kv import RedisUnavailable
from flashsale.kv import connection as kv_connection
from flashsale.repositories import flash_sales, locks, orders, placements
from flashsale.stock_gate import Admitted, GateKeys, Replayed, StockGate, scripts, take_snapshot
from flashsale.strategies.base import PGBENCH_VARIANTS, Busy, OrderStrategy, RedisBenchmarkPlan, RedisDown
from flashsale.strategies.pipelined import pipelined_transaction

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]

_ATTEMPTS = 3  # admissions of one order the database may refuse (the gate was rebuilt meanwhile) before `busy`
_POLL_S = 0.002  # between looks at a gate another order rebuilds, or at a replayed order not yet written

log = logging.getLogger("flashsale.strategies.redis_gate")


class RedisGate(OrderStrategy):
    """Parameters: `redis_url` (default: `FLASHSALE_REDIS_URL`, else the embedded Valkey; resolved at first use);
    `redis_connections` (default 64), the most connections open to Redis; `wait_s` (default 5.0), how long an
    order waits for a gate being rebuilt, for the write of the order its key replays, for a Redis connection, or for
    a reply of Redis;
    `clock` (the instant the script checks the window against, and the write's).

    Redis away: the order is refused with `RedisDown` (503 `unavailable`) as soon as Redis refuses or resets the
    connection, or after `wait_s` without a reply; it is never decided without the gate. The outage is logged once
    as it begins and once as it ends.

    Counters: `admitted`, `refused` (by the gate, without the database), `replayed`, `written`, `given_back`
    (writes that failed), `database_refusals` (admitted orders the database refused: the gate was rebuilt since,
    or wrong), `invalidated` (gates dropped for a rebuild), `rebuilds`, `rebuild_waits`, `redis_errors_after_write`
    (give-backs and drops Redis did not take), `redis_unavailable` (orders refused because Redis did not answer).
    """

    name = "redis_gate"
    safe = True
    needs_redis = True
    replays_keys = True
    reference_kind = "redis-benchmark"
    summary = (
        "A stock gate in Redis (Valkey), as production flash sales run. One Lua script decides each order "
        "atomically in Redis: an idempotency key that already has an order is answered with it, then the sale "
        "window, the units left and the buyer's units against the per-user limit; if all pass it takes the units "
        "and records the buyer and the key. Refusals never reach PostgreSQL. Each admitted order is written once, "
        "in one pipelined round trip (a per-(sale, user) advisory lock, then a conditional UPDATE + INSERT that "
        "checks every rule again and the gate's epoch); a write that fails gives its units back to the gate. "
        "PostgreSQL stays the record: at start, and whenever a sale's gate is missing (Redis restarted empty), "
        "the gate is rebuilt from the database under a lock, at a new epoch that fences off orders the old gate "
        "admitted. Costs: a second copy of the stock to keep in step (the audit compares them), a Redis round "
        "trip per order, and admitted orders still queue on the sale row."
    )

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis_connections: int = 64,
        wait_s: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(clock=clock)
        if isinstance(redis_connections, bool) or not isinstance(redis_connections, int) or redis_connections < 1:
            raise ValueError(f"redis_connections must be a whole number, 1 or more, got {redis_connections!r}")
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float) or not wait_s > 0:
            raise ValueError(f"wait_s must be a number of seconds above 0, got {wait_s!r}")
        self.redis_url = redis_url
        self.redis_connections = redis_connections
        self.wait_s = float(wait_s)
        self._gate: StockGate | None = None
        self._redis_lost = False  # an outage is under way: logged when it began, to be logged when it ends

    def reference_plan(self, vus: int, *, variant: str = PGBENCH_VARIANTS[0]) -> RedisBenchmarkPlan:
        """redis-benchmark sending the decide script (EVALSHA) with `vus` clients, each request an order of a user
        it draws among the sale's, without a key."""
        if variant != PGBENCH_VARIANTS[0]:
            raise ValueError(f"{self.name}'s reference has one variant, {PGBENCH_VARIANTS[0]}; got {variant!r}")
        return RedisBenchmarkPlan(
            script=scripts.source("decide"),
            clients=vus,
            keys=tuple(GateKeys.tagged("$sale").gate),
            args=("$now_us", "user:__rand_int__", "$quantity", "", "redis-benchmark"),
            note="the decision alone (the order's first round trip); admitted orders are not written, and users are "
            "drawn at random rather than each client ordering for its own",
        )

    @property
    def gate(self) -> StockGate:
        """The gates on the strategy's Redis, connected on first use. A command waits at most `wait_s` for a reply:
        a Redis that stops answering (frozen, or a network that drops packets) must not hold orders forever."""
        if self._gate is None:
            client = kv_connection.connect_pooled(
                self.redis_url,
                max_connections=self.redis_connections,
                timeout_s=self.wait_s,
                socket_timeout=self.wait_s,
                decode_responses=True,
            )
            self._gate = StockGate(client)
        return self._gate

    @contextlib.contextmanager
    def _redis(self) -> Iterator[None]:
        """A Redis that does not answer, as `RedisDown`: without its gate the strategy decides nothing. Counted, and
        logged once when the outage begins and once when Redis answers again (not once an order)."""
        try:
            yield
        except (RedisError, OSError, RedisUnavailable) as exc:
            self.counters["redis_unavailable"] += 1
            if not self._redis_lost:
                self._redis_lost = True
                cause = f"{type(exc).__name__}: {exc}"
                log.warning("Redis lost: refusing orders until it answers", extra={"fields": {"cause": cause}})
            raise RedisDown(f"the stock gate's Redis did not answer: {exc}") from exc
        if self._redis_lost:
            self._redis_lost = False
            log.warning("Redis back: deciding orders")

    async def start(self, pool: AsyncConnectionPool) -> None:
        """Rebuild every sale's gate from the database before the first order (whatever Redis held)."""
        async with pool.connection() as conn:
            sales = await flash_sales.list_all(conn)
        for sale in sales:
            deadline = time.monotonic() + self.wait_s
            while not await self._rebuild(sale.id, pool.connection, even_if_built=True):
                with self._redis():
                    if await self.gate.is_built(sale.id):
                        break  # another process rebuilt it meanwhile
                _before(deadline, f"the stock gate of sale {sale.id} was not rebuilt in {self.wait_s:g} s")

    async def stop(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            await gate.aclose()

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        return await self._place(command, _always(conn))

    async def place_order(self, pool: AsyncConnectionPool, command: PlaceOrder) -> Order:
        """Decided in Redis; a connection of `pool` is taken only to write an admitted order (or rebuild a gate)."""
        return await self._place(command, pool.connection)

    async def _place(self, command: PlaceOrder, connect: Connect) -> Order:
        for _ in range(_ATTEMPTS):
            admitted = await self._admit(command, connect)
            order = await self._write(command, admitted, connect)
            if order is not None:
                self.counters["written"] += 1
                return order
            # The database refused what the gate admitted: the gate was rebuilt since the order was decided (the
            # fence), or it is wrong. Drop it if it is still that gate, and decide again.
            self.counters["database_refusals"] += 1
            await self._drop(command.flash_sale_id, admitted.epoch)
        raise Busy(f"the database refused this order {_ATTEMPTS} times after the stock gate admitted it")

    async def _admit(self, command: PlaceOrder, connect: Connect) -> Admitted:
        """The gate's admission of the order; its refusal raised; a key's earlier order as `IdempotencyKeyTaken`
        once that order is written; a missing gate rebuilt (or waited for) first."""
        deadline = time.monotonic() + self.wait_s
        order_id = uuid.uuid4()
        while True:
            with self._redis():
                decision = await self.gate.decide(command, order_id=order_id, at=self.clock())
            if isinstance(decision, Admitted):
                self.counters["admitted"] += 1
                return decision
            if isinstance(decision, DomainError):
                self.counters["refused"] += 1
                raise decision
            if isinstance(decision, Replayed):
                if await self._written(decision.order_id, connect):
                    self.counters["replayed"] += 1
                    raise IdempotencyKeyTaken(str(command.idempotency_key))
                await asyncio.sleep(_POLL_S)  # the first request with this key is still writing its order
            else:
                await self._rebuild(command.flash_sale_id, connect)
            _before(deadline, f"no decision of the stock gate in {self.wait_s:g} s (rebuilding, or a replay unwritten)")

    async def _written(self, order_id: UUID, connect: Connect) -> bool:
        async with connect() as conn:
            return await orders.get(conn, order_id) is not None

    async def _rebuild(self, flash_sale_id: UUID, connect: Connect, *, even_if_built: bool = False) -> bool:
        """Rebuild the sale's gate from the database if it is missing (or `even_if_built`) and no other rebuild is
        under way (True; also if the gate is there); else wait a moment for that rebuild (False). SaleNotFound if the
        sale does not exist."""
        with self._redis():
            turn = await self.gate.lock_rebuild(flash_sale_id, even_if_built=even_if_built)
        if turn.built:
            return True
        if turn.token is None:
            self.counters["rebuild_waits"] += 1
            await asyncio.sleep(_POLL_S)
            return False
        token = turn.token
        installed = False
        try:
            async with connect() as conn:
                snapshot = await take_snapshot(conn, flash_sale_id)
            if snapshot is None:
                raise SaleNotFound(flash_sale_id)
            with self._redis():
                installed = await self.gate.install(flash_sale_id, snapshot, token)  # releases the lock
            self.counters["rebuilds"] += installed
        finally:
            if not installed:
                with contextlib.suppress(RedisError, OSError):
                    await self.gate.unlock_rebuild(flash_sale_id, token)
        return True

    async def _write(self, command: PlaceOrder, admitted: Admitted, connect: Connect) -> Order | None:
        """Write the admitted order, as the database checks it again (None: refused). If the write fails, give the
        units back when it surely did not commit; otherwise drop the gate, to be rebuilt from what did."""
        try:
            async with connect() as conn:
                try:
                    async with pipelined_transaction(conn) as tx:
                        await locks.lock_buyer(tx, command.flash_sale_id, command.user_id)
                        taken = await placements.send_take_admitted(
                            tx, command, order_id=admitted.order_id, epoch=admitted.epoch, now=admitted.at
                        )
                except errors.ForeignKeyViolation as exc:
                    raise UserNotFound(command.user_id) from exc
        except BaseException as exc:
            if rolled_back(exc):
                await self._give_back(command, admitted)
            else:
                await self._drop(command.flash_sale_id, admitted.epoch)
            raise
        return await taken.one()

    async def _give_back(self, command: PlaceOrder, admitted: Admitted) -> None:
        try:
            self.counters["given_back"] += await asyncio.shield(self.gate.give_back(command, admitted))
        except (RedisError, OSError) as exc:
            self.counters["redis_errors_after_write"] += 1
            log.warning("the stock gate did not take back the units of a failed write: %s", exc)

    async def _drop(self, flash_sale_id: UUID, epoch: int) -> None:
        try:
            self.counters["invalidated"] += await asyncio.shield(self.gate.invalidate(flash_sale_id, epoch))
        except (RedisError, OSError) as exc:
            self.counters["redis_errors_after_write"] += 1
            log.warning("the stock gate of sale %s was not dropped for a rebuild: %s", flash_sale_id, exc)


def rolled_back(exc: BaseException) -> bool:
    """Did a write that raised `exc` surely not commit? Yes when nothing was sent (no connection came) or the server
    answered with an error (its transaction rolled back); a lost connection or a cancelled write may have committed."""
    if isinstance(exc, DomainError | PoolTimeout | TooManyRequests | DatabaseDown):
        return True
    return isinstance(exc, psycopg.Error) and exc.sqlstate is not None


def _always(conn: AsyncConnection) -> Connect:
    """`connect` for an order placed on one connection: that connection, every time."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[AsyncConnection]:
        yield conn

    return connect


def _before(deadline: float, message: str) -> None:
    if time.monotonic() > deadline:
        raise Busy(message)
