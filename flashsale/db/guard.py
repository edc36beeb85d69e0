"""A circuit breaker in front of the database, so that callers are refused at once while it is away.

Without it, a request arriving while PostgreSQL restarts waits for a pooled connection until the pool's timeout
(the pool retries its connections in the background), and every such request costs that wait. With it, the first
connection failure any caller sees opens the circuit: from then on `check()` raises `DatabaseDown` (the service
answers 503 with `Retry-After` in microseconds) while a background probe opens a connection of its own every
`probe_interval_s`. When the probe gets an answer the pool is checked (broken idle connections are dropped and
missing ones opened) and the circuit closes again: the service recovers by itself, without a restart.

Unlike the usual half-open state of circuit-breaker libraries, no caller's request is used as the probe, so no
caller ever waits on a database that is not there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import psycopg
from psycopg import errors
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

log = logging.getLogger("flashsale.db")

# SQLSTATEs of a lost or refused connection: class 08 (connection exception) and the server's shutdown codes.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin_shutdown, crash_shutdown, cannot_connect_now
_NOT_CONNECTION = (PoolTimeout, TooManyRequests, PoolClosed, errors.PipelineAborted)


class DatabaseDown(Exception):
    """The circuit is open: the database was lost and has not answered the probe since."""

    code = "unavailable"

    def __init__(self, message: str = "the database is unavailable; retry later", *, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def is_connection_failure(exc: BaseException) -> bool:
    """True for errors that mean the connection (or the server) is gone, not that a statement failed.

    Client-side failures carry no SQLSTATE; the server's own are class 08 and 57P01-57P03. The pool's errors are
    OperationalErrors too but say nothing about the database (a busy pool is not a dead server).
    """
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, _NOT_CONNECTION):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SHUTDOWN_STATES


class DatabaseGuard:
    """The circuit breaker of one pool (see the module's docstring). Use it from one event loop."""

    def __init__(
        self,
        url: str,
        *,
        pool: AsyncConnectionPool | None = None,
        probe_interval_s: float = 0.25,
        connect_timeout_s: int = 2,
        retry_after_s: float = 1.0,
    ) -> None:
        self.url = url
        self.pool = pool
        self.probe_interval_s = probe_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self.opened_at: float | None = None  # time.monotonic() when the circuit opened, None while closed
        self.trips = 0  # times the circuit opened
        self.refused = 0  # calls refused while it was open
        self.open_s = 0.0  # total time open, closed periods only
        self.last_cause: str | None = None
        self._probe: asyncio.Task | None = None
        self._stopped = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def check(self) -> None:
        """Raise `DatabaseDown` while the circuit is open."""
        if self.opened_at is not None:
            self.refused += 1
            raise DatabaseDown(retry_after_s=self.retry_after_s)

    def observe(self, exc: BaseException) -> bool:
        """Open the circuit if `exc` says the database is gone; True if it did (or was open already)."""
        if not is_connection_failure(exc):
            return False
        self.trip(exc)
        return True

    def trip(self, cause: BaseException | str) -> None:
        """Open the circuit (if closed) and start probing."""
        if self.opened_at is not None or self._stopped:
            return
        self.opened_at = time.monotonic()
        self.trips += 1
        self.last_cause = _describe(cause)
        log.warning("database lost: refusing requests until it answers", extra={"fields": {"cause": self.last_cause}})
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_up(), name="flashsale-db-probe")

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval_s)
            if await self.probe():
                break
        if self.pool is not None:
            # Drop the broken idle connections and start opening new ones before letting requests in.
            with contextlib.suppress(psycopg.Error):
                await self.pool.check()
        assert self.opened_at is not None
        down_s = time.monotonic() - self.opened_at
        self.open_s += down_s
        self.opened_at = None
        log.warning("database back: accepting requests", extra={"fields": {"open_s": round(down_s, 3)}})

    async def probe(self) -> bool:
        """Does the database answer a fresh connection now?"""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=self.connect_timeout_s
            )
            async with conn:
                await conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    async def stop(self) -> None:
        """Stop probing (at shutdown)."""
        self._stopped = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None

    def stats(self) -> dict[str, float | int | bool]:
        open_now = time.monotonic() - self.opened_at if self.opened_at is not None else 0.0
        return {"open": self.is_open, "trips": self.trips, "refused": self.refused, "open_s": self.open_s + open_now}


def _describe(cause: BaseException | str) -> str:
    if isinstance(cause, str):
        return cause
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
