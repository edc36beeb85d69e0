"""What the database guard (`flashsale.db.guard`) and the Redis breaker (`flashsale.admission.redis_breaker`) share:
a circuit breaker whose probe is never a caller's request.

`suspect(cause)` probes at once, in a task of its own: if the server answers it was a false alarm; if not, the
circuit *opens* (`is_open`) and the probe is tried every `probe_interval_s` until it answers, then the circuit
closes. A subclass says how to probe (`probe`), what else happens when the circuit opens (`_opened`) and what must
be done before it closes (`_before_close`); both log once at each change, with the subclass's `LOST` and `BACK`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time


class Circuit:
    LOST = "lost"  # logged when the circuit opens, with its cause
    BACK = "back"  # logged when it closes, with how long it was open
    log = logging.getLogger("flashsale")

    def __init__(self, *, probe_interval_s: float = 0.25) -> None:
        self.probe_interval_s = probe_interval_s
        self.opened_at: float | None = None  # time.monotonic() when the circuit opened, None while closed
        self.trips = 0  # times the circuit opened
        self.false_alarms = 0  # suspicions after which the server answered at once
        self.open_s = 0.0  # total time open, closed periods only
        self.last_cause: str | None = None
        self._watch: asyncio.Task | None = None
        self._stopped = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    async def probe(self) -> bool:
        """Does the server answer now?"""
        raise NotImplementedError

    def suspect(self, cause: BaseException | str) -> None:
        """Probe now, and open the circuit unless the server answers (nothing to do if already watching)."""
        if self._watch is not None or self._stopped:
            return
        name = f"{type(self).__name__}-watch"
        self._watch = asyncio.get_running_loop().create_task(self._watch_over(cause), name=name)

    async def _watch_over(self, cause: BaseException | str) -> None:
        try:
            if await self.probe():
                self.false_alarms += 1
                return
            self._open(cause)
            while True:
                await asyncio.sleep(self.probe_interval_s)
                if await self.probe():
                    break
            await self._before_close()
            self._close()
        finally:
            self._watch = None

    def _open(self, cause: BaseException | str) -> None:
        self.opened_at = time.monotonic()
        self.trips += 1
        self.last_cause = describe(cause)
        self.log.warning(self.LOST, extra={"fields": {"cause": self.last_cause}})
        self._opened()

    def _opened(self) -> None:
        """What else happens when the circuit opens."""

    async def _before_close(self) -> None:
        """What must be done before callers are let through again."""

    def _close(self) -> None:
        assert self.opened_at is not None
        down_s = time.monotonic() - self.opened_at
        self.open_s += down_s
        self.opened_at = None
        self.log.warning(self.BACK, extra={"fields": {"open_s": round(down_s, 3)}})
        self._closed()

    def _closed(self) -> None:
        """What else happens when the circuit closes."""

    async def stop(self) -> None:
        """Stop watching (at shutdown)."""
        self._stopped = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    def stats(self) -> dict[str, float | int | bool]:
        open_now = time.monotonic() - self.opened_at if self.opened_at is not None else 0.0
        return {
            "open": self.is_open,
            "trips": self.trips,
            "false_alarms": self.false_alarms,
            "open_s": self.open_s + open_now,
        }


def describe(cause: BaseException | str) -> str:
    """A cause in one line: its type and the first line of its message."""
    if isinstance(cause, str):
        return cause
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
