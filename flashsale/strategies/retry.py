"""Bounded retries with jittered exponential backoff, shared by the strategies that retry an attempt which lost a
race (`pessimistic_nowait`, `optimistic`, `serializable`): `RetryStrategy.with_retries` is their one retry loop,
and `RetryStrategy.create_order` runs each one's `attempt` in it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from psycopg import AsyncConnection

from flashsale.domain import Clock, Order, PlaceOrder, utc_now
from flashsale.strategies.base import Busy, OrderStrategy


@dataclass(frozen=True)
class Backoff:
    """Before retry n (0-based), sleep a uniform random time in [0, min(cap_s, base_s * 2**n)] ("full jitter"),
    so that buyers who collided once do not collide again in lockstep."""

    base_s: float = 0.001
    cap_s: float = 0.05

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0:
            raise ValueError(f"backoff times must be 0 or more, got base {self.base_s} and cap {self.cap_s}")

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.cap_s, self.base_s * 2 ** min(retry, 32)))

    async def sleep(self, retry: int) -> None:
        await asyncio.sleep(self.delay(retry))


def check_retries(retries: int) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number, 0 or more, got {retries!r}")
    return retries


class RetryStrategy(OrderStrategy):
    """A strategy whose attempts can lose a race and are then tried again: `retries` after the first attempt (default
    `default_retries`), a jittered backoff from `backoff_s` doubling up to `max_backoff_s` between them, and `clock`.

    A subclass gives its `attempt`, the errors by which one is `lost` and the `gave_up` message of `Busy`.
    Counters: `retries`, `busy` (orders given up), and the subclass's `conflict` counter (attempts that lost).
    """

    default_retries: ClassVar[int] = 16
    conflict: ClassVar[str]
    lost: ClassVar[tuple[type[Exception], ...]] = ()  # errors by which an attempt lost its race (or it returns None)
    gave_up: ClassVar[str]  # how `Busy` begins, `{sale}` the flash sale (the number of attempts follows)

    def __init__(
        self,
        *,
        retries: int | None = None,
        backoff_s: float = 0.001,
        max_backoff_s: float = 0.05,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(clock=clock)
        self.retries = check_retries(self.default_retries if retries is None else retries)
        self.backoff = Backoff(backoff_s, max_backoff_s)

    async def create_order(self, conn: AsyncConnection, command: PlaceOrder) -> Order:
        return await self.with_retries(
            lambda: self.attempt(conn, command), lost=self.lost, busy=self.gave_up.format(sale=command.flash_sale_id)
        )

    async def attempt(self, conn: AsyncConnection, command: PlaceOrder) -> Order | None:
        """One try at the order: the order, or None (or one of `lost`) when it lost a race."""
        raise NotImplementedError

    async def with_retries(
        self,
        attempt: Callable[[], Awaitable[Order | None]],
        *,
        lost: tuple[type[Exception], ...] = (),
        busy: str,
    ) -> Order:
        """Run `attempt` until it returns an order; an attempt that returns None or raises one of `lost` lost a race
        (counted as `conflict`) and is tried again after a backoff, at most `retries` times; then `Busy`, whose
        message is `busy` followed by the number of attempts. Any other error (a refusal) ends the order at once."""
        for n in range(self.retries + 1):
            if n:
                self.counters["retries"] += 1
                await self.backoff.sleep(n - 1)
            try:
                order = await attempt()
            except lost:
                order = None
            if order is not None:
                return order
            self.counters[self.conflict] += 1
        self.counters["busy"] += 1
        raise Busy(f"{busy} {self.retries + 1} attempts", retry_after_s=max(self.backoff.cap_s, 0.001))


# The name the read-check strategies knew it by.
ReadCheckRetryStrategy = RetryStrategy
