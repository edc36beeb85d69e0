"""The per-user rate limit shared by every server process and host (`serve --admission redis`): one Lua script in
Redis (`lua/rate_limit.lua`, GCRA on the Redis server's clock) decides each order, so that a user gets `rate` orders
a second (after a burst of `burst`) however many processes serve, where `UserRateLimiter` gives `rate` per process.

    limiter = SharedRateLimiter(client, rate=10, namespace="db1")
    await limiter.admit(user_id)        # RateLimited (with retry_after_s), or a redis-py error if Redis is away
"""

from __future__ import annotations

from collections.abc import Hashable

from redis.asyncio import Redis

from flashsale.admission import scripts
from flashsale.admission.rate_limit import RateLimited

PREFIX = "flashsale:rate"


class SharedRateLimiter:
    def __init__(self, client: Redis, rate: float, *, burst: float | None = None, namespace: str) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1, round(burst if burst is not None else rate))
        self.interval_us = max(1, round(1_000_000 / rate))
        self.namespace = namespace
        self._script = scripts.register(client, "rate_limit")

    def key(self, user: Hashable) -> str:
        return f"{PREFIX}:{self.namespace}:{user}"

    async def admit(self, user: Hashable) -> None:
        """Take one of `user`'s orders, or raise `RateLimited` with the time until the next one."""
        wait_us = int(await self._script(keys=[self.key(user)], args=[self.interval_us, self.burst]))
        if wait_us > 0:
            raise RateLimited(self.rate, wait_us / 1_000_000)
