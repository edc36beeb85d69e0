"""What every locking strategy provides, so that the CLI, the HTTP service, the load runner and the notebooks
can swap one for another by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import ClassVar
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from flashsale.domain import Clock, Order, PlaceOrder, utc_now


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


@dataclass(frozen=True)
class PgbenchPlan:
    """How to replay a strategy's SQL with pgbench for a run at `vus` virtual users: the script, the number of
    clients, the `-D NAME=VALUE` variables beyond :sale, :users and :quantity, extra options, and how many orders
    one pgbench transaction stands for (so that orders/s = TPS * orders_per_transaction)."""

    script: str
    clients: int
    variables: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    orders_per_transaction: int = 1


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

    def pgbench_script(self) -> str:
        """The SQL this strategy sends, as a pgbench script (variables: :sale, :users, :quantity)."""
        return (resources.files("flashsale.strategies") / "pgbench" / f"{self.name}.sql").read_text()

    def pgbench_plan(self, vus: int) -> PgbenchPlan:
        """The pgbench run that corresponds to `vus` virtual users placing orders through this strategy."""
        return PgbenchPlan(script=self.pgbench_script(), clients=vus)

    async def prepare_pgbench(self, conn: AsyncConnection, flash_sale_id: UUID) -> None:
        """Put the sale in the state this strategy's pgbench script expects (`sharded` moves the units into the
        shards, as its first order would). Call it before replaying the script on a fresh sale."""
