"""A circuit breaker in front of Redis, for shared admission (`serve --admission redis`): while Redis does not
answer, each process falls back to strict local limits at once instead of waiting on it (FlashDeal's phase 7 plan).

The watch is `flashsale.circuit.Circuit`'s, as the database guard's:

- A call that fails on its connection (refused, reset, timed out: `is_redis_failure`) is handed to `failed(exc)`;
  the caller uses its local fallback for that call, and the breaker PINGs Redis at once. If Redis answers, it was a
  false alarm (one broken connection). If not, the circuit *opens*: `closed` is False, and callers go straight to
  their fallback without trying Redis, while the breaker PINGs every `probe_interval_s`.
- When Redis answers again, the circuit closes and the callers use Redis again. As with the database guard, no
  caller's request is used as the probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.circuit import Circuit

log = logging.getLogger("flashsale.admission")


def is_redis_failure(exc: BaseException) -> bool:
    """True for errors that mean Redis (or the way to it) is gone, not that a command was refused."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | asyncio.TimeoutError)


def _ignore() -> None:
    return None


class RedisBreaker(Circuit):
    """Use it from one event loop. `ping` is a coroutine function that raises if Redis does not answer (a PING)."""

    LOST = "redis lost: admission falls back to local limits"
    BACK = "redis back: admission shared again"
    log = log

    def __init__(
        self,
        ping: Callable[[], Awaitable[Any]],
        *,
        probe_interval_s: float = 0.25,
        on_open: Callable[[], None] = _ignore,
        on_close: Callable[[], None] = _ignore,
    ) -> None:
        super().__init__(probe_interval_s=probe_interval_s)
        self._ping = ping
        self._on_open, self._on_close = on_open, on_close
        self.fallbacks = 0  # calls that used the local fallback

    @property
    def closed(self) -> bool:
        """Calls may go to Redis."""
        return not self.is_open

    def failed(self, exc: BaseException) -> bool:
        """`exc` came from a call to Redis: True if it says Redis is away (the caller falls back; the breaker finds
        out whether to open), False if it is another error (the caller raises it)."""
        if not is_redis_failure(exc):
            return False
        self.fallbacks += 1
        self.suspect(exc)
        return True

    def fell_back(self) -> None:
        """A caller used its fallback because the circuit is open."""
        self.fallbacks += 1

    async def probe(self) -> bool:
        try:
            await self._ping()
        except Exception:
            return False
        return True

    def _opened(self) -> None:
        self._on_open()

    def _closed(self) -> None:
        self._on_close()

    def stats(self) -> dict[str, float | int | bool]:
        return {**super().stats(), "fallbacks": self.fallbacks}
