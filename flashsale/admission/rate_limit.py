"""A per-user rate limit: one token bucket per user, `rate` tokens a second up to a burst of `burst` (by default
`rate`, the original's "10 requests/s per user"). An order takes a token; without one it is refused with the time
until the next token comes (`RateLimited.retry_after_s`), before it costs the database anything.

The buckets are plain arithmetic on a monotonic clock (injected, so that the rules are tested without waiting). A
bucket that has refilled completely carries no information any more, so once more than `PRUNE_AT` users are tracked
the full ones are forgotten: memory follows the users active in the last `burst / rate` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

PRUNE_AT = 100_000


class RateLimited(Exception):
    """This user sent more orders than the rate allows: the caller may retry after `retry_after_s`."""

    code = "rate_limited"

    def __init__(self, rate: float, retry_after_s: float) -> None:
        super().__init__(f"more than {rate:g} orders per second from this user; retry later")
        self.retry_after_s = retry_after_s


@dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: float  # tokens it holds at most
    tokens: float
    updated: float  # clock reading when `tokens` was right

    def take(self, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is (nothing is taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class UserRateLimiter:
    def __init__(self, rate: float, *, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    @property
    def tracked(self) -> int:
        """Users with a bucket now: what the limiter's memory follows."""
        return len(self._buckets)

    def admit(self, user: Hashable) -> None:
        """Take one of `user`'s tokens, or raise `RateLimited`."""
        now = self._clock()
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) >= PRUNE_AT:
                self._buckets = {key: b for key, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[user] = TokenBucket(self.rate, self.burst, self.burst, now)
        wait = bucket.take(now)
        if wait:
            raise RateLimited(self.rate, wait)
