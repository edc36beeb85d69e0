"""A circuit breaker in front of Redis, for shared admission (`serve --admission redis`): while Redis does not
answer, each process falls back to strict local limits at once instead of waiting on it (FlashDeal's phase 7 plan).

- A call that fails on its connection (refused, reset, timed out: `is_redis_failure`) is handed to `failed(exc)`;
  the caller uses its local fallback for that call, and the breaker PINGs Redis at once. If Redis answers, it was a
  false alarm (one broken connection). If not, the circuit *opens*: `closed` is False, and callers go straight to
  their fallback without trying Redis, while the breaker PINGs every `probe_interval_s`.
- When Redis answers again, the circuit closes and the callers use Redis again. As with the database guard, no
  caller's request is used as the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("flashsale.admission")


def is_redis_failure(exc: BaseException) -> bool:
    """True for errors that mean Redis (or the way to it) is gone, not that a command was refused."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | asyncio.TimeoutError)


def _ignore() -> None:
    return None


class RedisBreaker:
    """Use it from one event loop. `probe` is a coroutine function that raises if Redis does not answer (a PING)."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[Any]],
        *,
        probe_interval_s: float = 0.25,
        on_open: Callable[[], None] = _ignore,
        on_close: Callable[[], None] = _ignore,
    ) -> None:
        self._probe = probe
        self.probe_interval_s = probe_interval_s
        self._on_open, self._on_close = on_open, on_close
        self.opened_at: float | None = None  # time.monotonic() when the circuit opened, None while closed
        self.trips = 0  # times the circuit opened
        self.false_alarms = 0  # failures after which Redis answered at once
        self.fallbacks = 0  # calls that used the local fallback
        self.open_s = 0.0  # total time open, closed periods only
        self.last_cause: str | None = None
        self._watch: asyncio.Task | None = None
        self._stopped = False

    @property
    def closed(self) -> bool:
        """Calls may go to Redis."""
        return self.opened_at is None

    def failed(self, exc: BaseException) -> bool:
        """`exc` came from a call to Redis: True if it says Redis is away (the caller falls back; the breaker finds
        out whether to open), False if it is another error (the caller raises it)."""
        if not is_redis_failure(exc):
            return False
        self.fallbacks += 1
        if self._watch is None and not self._stopped:
            self._watch = asyncio.get_running_loop().create_task(self._watch_over(exc), name="flashsale-redis-breaker")
        return True

    def fell_back(self) -> None:
        """A caller used its fallback because the circuit is open."""
        self.fallbacks += 1

    async def answers(self) -> bool:
        try:
            await self._probe()
        except Exception:
            return False
        return True

    async def _watch_over(self, cause: BaseException) -> None:
        try:
            if await self.answers():
                self.false_alarms += 1
                return
            self._open(cause)
            while True:
                await asyncio.sleep(self.probe_interval_s)
                if await self.answers():
                    break
            self._close()
        finally:
            self._watch = None

    def _open(self, cause: BaseException) -> None:
        self.opened_at = time.monotonic()
        self.trips += 1
        self.last_cause = f"{type(cause).__name__}: {cause}".strip().rstrip(":")
        log.warning("redis lost: admission falls back to local limits", extra={"fields": {"cause": self.last_cause}})
        self._on_open()

    def _close(self) -> None:
        assert self.opened_at is not None
        down_s = time.monotonic() - self.opened_at
        self.open_s += down_s
        self.opened_at = None
        log.warning("redis back: admission shared again", extra={"fields": {"open_s": round(down_s, 3)}})
        self._on_close()

    async def stop(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    def stats(self) -> dict[str, float | int | bool]:
        open_now = time.monotonic() - self.opened_at if self.opened_at is not None else 0.0
        return {
            "open": not self.closed,
            "trips": self.trips,
            "false_alarms": self.false_alarms,
            "fallbacks": self.fallbacks,
            "open_s": self.open_s + open_now,
        }
