"""Bounded retries with jittered exponential backoff, shared by the strategies that retry (`pessimistic_nowait`,
`optimistic`, `serializable`)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


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
