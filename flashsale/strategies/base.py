"""What every locking strategy provides, so that the CLI, the HTTP service, the load runner and the notebooks
can swap one for another by name."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import ClassVar
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from flashsale.domain import Clock, DomainError, Order, PlaceOrder, utc_now
from flashsale.repositories import database


class StrategyUnavailable(Exception):
    """The strategy could not take the order now (not a rule of the sale): the caller may retry later.

    The HTTP service answers these with 503 and `Retry-After`; the load runner counts them by `code`.
    """

    code: ClassVar[str] = "unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Busy(StrategyUnavailable):
    """The inventory row stayed locked through every bounded retry (e.g. FOR UPDATE NOWAIT)."""

    code = "busy"


class Rejected(StrategyUnavailable):
    """Admission control refused the order (e.g. a full queue)."""

    code = "rejected"


class RedisDown(StrategyUnavailable):
    """The strategy's Redis did not answer (refused, reset, or silent too long): a refusal for now, `unavailable`,
    as `DatabaseDown` is for the database. The strategy logs the outage once, so the service gives each refusal
    no log line of its own."""


# The pgbench scripts of every strategy, in two variants:
# - "driver" (the default): the statements the strategy sends, in its round trips as far as pgbench allows (BEGIN
#   and COMMIT in one pipeline with the statements where the strategy decides in SQL); the user's id is looked up
#   before the transaction, since the driver knows it already. `PgbenchPlan.matched` says whether it is exact.
# - "lookup": the first scripts (strategies/pgbench/lookup/), one statement a round trip, looking the user up by
#   number inside each order (pessimistic: while the sale row is locked). Kept to compare with earlier figures.
PGBENCH_VARIANTS = ("driver", "lookup")

_LOOKUP_NOTE = "one statement a round trip, and a lookup of the user by number in every order (the driver has none)"

# What a strategy's reference line replays: its SQL with pgbench, or (strategies that decide in Redis) its Lua
# script with redis-benchmark.
REFERENCE_KINDS = ("pgbench", "redis-benchmark")


class NoPgbenchScript(ValueError):
    """The strategy decides outside the database: its reference line is not pgbench's."""


@dataclass(frozen=True)
class PgbenchPlan:
    """How to replay a strategy's SQL with pgbench for a run at `vus` virtual users: the script, the number of
    clients, the `-D NAME=VALUE` variables beyond :sale, :users and :quantity, extra options, and how many orders
    one pgbench transaction stands for (so that orders/s = TPS * orders_per_transaction).

    `variant` names the script (one of `PGBENCH_VARIANTS`); `matched` says whether it sends the driver's statements
    in the driver's round trips, and `note` in one line where it differs (the script's header says it in full)."""

    kind: ClassVar[str] = REFERENCE_KINDS[0]
    script: str
    clients: int
    variables: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    orders_per_transaction: int = 1
    variant: str = PGBENCH_VARIANTS[0]
    matched: bool = False
    note: str = ""


@dataclass(frozen=True)
class RedisBenchmarkPlan:
    """How to replay a strategy's Lua script with redis-benchmark for a run at `vus` virtual users: the script (sent
    as EVALSHA), the clients, the script's `keys` and `args` (where `$sale`, `$now_us` and `$quantity` stand for
    the sale, the instant and the quantity, and `__rand_int__` for a user drawn by redis-benchmark among the sale's),
    and how many requests to send (redis-benchmark runs a count, not a duration). One request is one decision;
    `note` says in one line how it stands to what the strategy does for an order."""

    kind: ClassVar[str] = REFERENCE_KINDS[1]
    script: str
    clients: int
    keys: tuple[str, ...]
    args: tuple[str, ...]
    requests: int = 100_000
    note: str = ""


ReferencePlan = PgbenchPlan | RedisBenchmarkPlan


class OrderStrategy(ABC):
    """A way of placing an order on a flash sale without overselling (unless `safe` is False).

    `create_order(conn, command)` is the order logic on one connection: it owns the transaction on that
    connection, commits on success, rolls back and raises a `DomainError` otherwise.
    `place_order(pool, command)` is what callers with a pool use; strategies that queue or batch override it.
    `clock` is the time every check of the sale window uses (in Python, or sent to the statement that checks it), so
    that a test or a notebook can place orders at another time.
    """

    name: ClassVar[str]
    safe: ClassVar[bool] = True
    summary: ClassVar[str]
    # The "driver" pgbench script: whether it sends exactly the strategy's round trips, and where it differs.
    pgbench_matched: ClassVar[bool] = False
    pgbench_note: ClassVar[str] = ""
    # The tool its reference line runs (one of `REFERENCE_KINDS`).
    reference_kind: ClassVar[str] = REFERENCE_KINDS[0]
    # Decides in Redis as well (`redis_gate`): it needs a Redis server (`flashsale.kv`), which the tests give it.
    needs_redis: ClassVar[bool] = False
    # Answers an idempotency key that already has an order itself, before any rule and without the database, by
    # raising `IdempotencyKeyTaken`: `flashsale.services.idempotency` then looks the key up neither before placing nor
    # after a refusal (a refusal is then final: no request with the same key had won).
    replays_keys: ClassVar[bool] = False

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock
        # Counters a strategy wants reported (retries, conflicts, ...): the load runner and /metrics read them.
        self.counters: Counter[str] = Counter()

    @abstractmethod
    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order: ...

    async def place_order(self, pool: AsyncConnectionPool, command: PlaceOrder) -> Order:
        async with pool.connection() as conn:
            return await self.create_order(conn, command)

    async def start(self, pool: AsyncConnectionPool) -> None:
        """Called once before the first order (strategies with background workers start them here)."""

    async def stop(self) -> None:
        """Called once after the last order."""

    async def warm_up(self, pool: AsyncConnectionPool) -> None:
        """Before the first real order: every connection of `pool` at once places a few orders the database refuses
        (a sale that does not exist), as many as psycopg runs a statement before it prepares it, then the strategy's
        counters are set back. A new backend loads its catalog caches and plans on its first statements, which
        takes milliseconds that the first orders would otherwise pay, some under the sale's lock. Only what a
        refused order sends is warmed: the reads (and the statements that decide in SQL), not a flow's writes. Any
        other failure ends that connection's warm-up quietly: the first real order meets it as it would have.
        Each connection then publishes its statistics at once (PostgreSQL holds a busy session's back up to a
        second), so that a count of the database's transactions begun after the warm-up leaves it out."""
        counters = self.counters.copy()
        size = pool.max_size
        everyone = asyncio.Barrier(size)  # each task keeps its connection until all have one: each one is warmed
        nowhere = PlaceOrder(user_id=UUID(int=0), flash_sale_id=UUID(int=0))

        async def warm() -> None:
            try:
                async with pool.connection() as conn:
                    await everyone.wait()
                    for _ in range((conn.prepare_threshold or 0) + 1):
                        try:
                            await self.create_order(conn, nowhere)
                        except (DomainError, StrategyUnavailable):
                            continue  # the refusal it is sent for
                        except Exception:
                            break
                    await database.publish_statistics(conn)
            except BaseException:
                await everyone.abort()  # the others stop waiting for a connection that will not come
                raise

        await asyncio.gather(*(warm() for _ in range(size)))
        self.counters.clear()
        self.counters.update(counters)

    def pgbench_script(self, variant: str = PGBENCH_VARIANTS[0]) -> str:
        """The SQL this strategy sends, as a pgbench script of `variant` (see `PGBENCH_VARIANTS`; variables: :sale,
        :users, :quantity)."""
        if variant not in PGBENCH_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(PGBENCH_VARIANTS)}, got {variant!r}")
        if self.reference_kind != "pgbench":
            raise NoPgbenchScript(f"{self.name} has no pgbench script: its reference line is {self.reference_kind}")
        folder = resources.files("flashsale.strategies") / "pgbench"
        if variant != "driver":
            folder = folder / variant
        return (folder / f"{self.name}.sql").read_text()

    def reference_plan(self, vus: int, *, variant: str = PGBENCH_VARIANTS[0]) -> ReferencePlan:
        """The reference line's run for `vus` virtual users: pgbench with the script of `variant` (see
        `pgbench_plan`), or, for a strategy that decides in Redis, redis-benchmark with its Lua script."""
        return self.pgbench_plan(vus, variant=variant)

    def pgbench_plan(self, vus: int, *, variant: str = PGBENCH_VARIANTS[0]) -> PgbenchPlan:
        """The pgbench run that corresponds to `vus` virtual users placing orders through this strategy, with the
        script of `variant`."""
        script = self.pgbench_script(variant)
        if variant == "driver":
            return PgbenchPlan(script, vus, variant=variant, matched=self.pgbench_matched, note=self.pgbench_note)
        return PgbenchPlan(script, vus, variant=variant, matched=False, note=_LOOKUP_NOTE)

    async def prepare_pgbench(self, conn: AsyncConnection, flash_sale_id: UUID) -> None:
        """Put the sale in the state this strategy's pgbench script expects (`sharded` moves the units into the
        shards, as its first order would). Call it before replaying the script on a fresh sale."""
