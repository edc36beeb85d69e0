"""The catalogue of locking strategies, selectable by name everywhere (`--strategy`, notebooks, the service)."""

from __future__ import annotations

from typing import Any

from flashsale.strategies.base import Busy, OrderStrategy, Rejected, StrategyUnavailable
from flashsale.strategies.pessimistic import Pessimistic

STRATEGIES: dict[str, type[OrderStrategy]] = {cls.name: cls for cls in (Pessimistic,)}
DEFAULT_STRATEGY = "pessimistic"


class UnknownStrategy(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")


def names() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str, **params: Any) -> OrderStrategy:
    """A fresh instance of the strategy called `name` (each instance keeps its own counters and workers)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise UnknownStrategy(name) from None
    return cls(**params)


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Busy",
    "OrderStrategy",
    "Rejected",
    "StrategyUnavailable",
    "UnknownStrategy",
    "get_strategy",
    "names",
]
