"""Bounded retries with jittered exponential backoff, shared by the strategies that retry (`pessimistic_nowait`,
`optimistic`, `serializable`)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flashsale.strategies.base import OrderStrategy
from flashsale.strategies.pessimistic import utc_now


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


class ReadCheckRetryStrategy(OrderStrategy):
    """The settings shared by the strategies that read without a lock, check in Python and retry a write that lost
    a race (`optimistic`, `serializable`): how many retries, the backoff between them, the clock of the checks."""

    def __init__(
        self,
        *,
        retries: int = 16,
        backoff_s: float = 0.001,
        max_backoff_s: float = 0.05,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.retries = check_retries(retries)
        self.backoff = Backoff(backoff_s, max_backoff_s)
        self.clock = clock
