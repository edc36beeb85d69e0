"""The catalogue of locking strategies, selectable by name everywhere (`--strategy`, notebooks, the service)."""

from __future__ import annotations

from typing import Any

from flashsale.strategies.atomic import Atomic
from flashsale.strategies.base import (
    PGBENCH_VARIANTS,
    REFERENCE_KINDS,
    Busy,
    NoPgbenchScript,
    OrderStrategy,
    PgbenchPlan,
    RedisBenchmarkPlan,
    RedisDown,
    ReferencePlan,
    Rejected,
    StrategyUnavailable,
)
from flashsale.strategies.batched import Batched
from flashsale.strategies.optimistic import Optimistic
from flashsale.strategies.pessimistic import Pessimistic
from flashsale.strategies.pessimistic_nowait import PessimisticNowait
from flashsale.strategies.procedure import Procedure
from flashsale.strategies.redis_gate import RedisGate
from flashsale.strategies.serializable import Serializable
from flashsale.strategies.sharded import Sharded
from flashsale.strategies.unsafe import Unsafe

# In the order listings show them: the baseline, its variants, the designs that spread or amortise the lock, the
# gate that keeps refusals out of the database, the counter-example last.
STRATEGIES: dict[str, type[OrderStrategy]] = {
    cls.name: cls
    for cls in (
        Pessimistic,
        PessimisticNowait,
        Optimistic,
        Serializable,
        Procedure,
        Atomic,
        Sharded,
        Batched,
        RedisGate,
        Unsafe,
    )
}
DEFAULT_STRATEGY = "pessimistic"


class UnknownStrategy(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")


def names(*, safe: bool | None = None, reference: str | None = None) -> list[str]:
    """Every strategy's name, or only the safe (or unsafe) ones, or only those whose reference line runs
    `reference` (one of `REFERENCE_KINDS`)."""
    return [
        name
        for name, cls in STRATEGIES.items()
        if (safe is None or cls.safe == safe) and (reference is None or cls.reference_kind == reference)
    ]


def get_strategy(name: str, **params: Any) -> OrderStrategy:
    """A fresh instance of the strategy called `name` (each instance keeps its own counters and workers)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise UnknownStrategy(name) from None
    return cls(**params)


__all__ = [
    "DEFAULT_STRATEGY",
    "PGBENCH_VARIANTS",
    "REFERENCE_KINDS",
    "STRATEGIES",
    "Busy",
    "NoPgbenchScript",
    "OrderStrategy",
    "PgbenchPlan",
    "RedisBenchmarkPlan",
    "RedisDown",
    "ReferencePlan",
    "Rejected",
    "StrategyUnavailable",
    "UnknownStrategy",
    "get_strategy",
    "names",
]
