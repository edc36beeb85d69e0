"""A circuit breaker in front of the database, so that nobody waits on a database that is not there.

Without it, a request arriving while PostgreSQL restarts waits for a pooled connection until the pool's timeout
(the pool retries its connections in the background), and every such request costs that wait. With it:

- a connection failure seen by anyone (a statement, or the pool's check of an idle connection) makes the guard
  *suspect* the database and try a connection of its own at once; a lone broken connection (a killed backend)
  is a false alarm and changes nothing;
- if the database does not answer, the circuit *opens*: every caller waiting for a pooled connection is stopped
  with `DatabaseDown` at once, and every later `check()` or `getconn()` raises it at once (the service answers
  503 with `Retry-After` in microseconds), while the guard keeps trying every `probe_interval_s`;
- when the database answers again, the pool is checked (broken idle connections dropped, missing ones opened) and
  the circuit closes: the service recovers by itself, without a restart.

Unlike the half-open state of the usual circuit-breaker libraries, no caller's request is ever used as the probe,
so no caller ever waits on a database that is not there. Requests already inside a transaction are never
interrupted: they finish or fail on their own.

    guard = DatabaseGuard(url)
    pool = make_pool(url, size=8, guard=guard, check=True)   # a GuardedPool
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref

import psycopg
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from flashsale.circuit import Circuit

log = logging.getLogger("flashsale.db")

# A pooled connection returned this recently (and no failure seen since) is handed out without a test query.
TRUST_RECENT_S = 0.5

# SQLSTATEs of a lost or refused connection: class 08 (connection exception) and the server's shutdown codes.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin_shutdown, crash_shutdown, cannot_connect_now


class DatabaseDown(psycopg.OperationalError):
    """The circuit is open: the database was lost and has not answered since. An `OperationalError`, as the pool's
    own `PoolTimeout` is, so that code handling database errors handles this one too."""

    code = "unavailable"

    def __init__(self, message: str = "the database is unavailable; retry later", *, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


_NOT_CONNECTION = (PoolTimeout, TooManyRequests, PoolClosed, DatabaseDown, errors.PipelineAborted)


def is_connection_failure(exc: BaseException) -> bool:
    """True for errors that mean the connection (or the server) is gone, not that a statement failed.

    Client-side failures carry no SQLSTATE; the server's own are class 08 and 57P01-57P03. The pool's errors are
    OperationalErrors too but say nothing about the database (a busy pool is not a dead server).
    """
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, _NOT_CONNECTION):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SHUTDOWN_STATES


class DatabaseGuard(Circuit):
    """The circuit breaker of one pool (see the module's docstring). Use it from one event loop."""

    LOST = "database lost: refusing requests until it answers"
    BACK = "database back: accepting requests"
    log = log

    def __init__(
        self,
        url: str,
        *,
        pool: AsyncConnectionPool | None = None,
        probe_interval_s: float = 0.25,
        connect_timeout_s: int = 2,
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__(probe_interval_s=probe_interval_s)
        self.url = url
        self.pool = pool
        self.connect_timeout_s = connect_timeout_s
        self.retry_after_s = retry_after_s
        self.refused = 0  # calls refused while it was open
        self.interrupted = 0  # callers stopped while they waited for a connection
        self._waiting: set[asyncio.Task] = set()  # tasks inside GuardedPool.getconn
        self._stopping: set[asyncio.Task] = set()  # of those, the ones cancelled by the guard
        self._purging: asyncio.Future | None = None
        self._failed_at = 0.0  # time.monotonic() of the last connection failure seen
        self._returned_at: weakref.WeakKeyDictionary[AsyncConnection, float] = weakref.WeakKeyDictionary()

    def down(self) -> DatabaseDown:
        return DatabaseDown(retry_after_s=self.retry_after_s)

    def check(self) -> None:
        """Raise `DatabaseDown` while the circuit is open."""
        if self.opened_at is not None:
            self.refused += 1
            raise self.down()

    def observe(self, exc: BaseException) -> bool:
        """If `exc` says a connection was lost, find out whether the database is (and open the circuit if so);
        True if it was such an error."""
        if not is_connection_failure(exc):
            return False
        self._failed_at = time.monotonic()
        self.suspect(exc)
        return True

    def _opened(self) -> None:
        for task in self._waiting:
            self._stopping.add(task)
            task.cancel()

    async def _before_close(self) -> None:
        if self.pool is not None:
            # Drop the broken idle connections and start opening new ones before letting requests in.
            with contextlib.suppress(psycopg.Error):
                await self.pool.check()

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

    async def check_connection(self, conn: AsyncConnection) -> None:
        """The pool's `check` callback. A connection returned less than `TRUST_RECENT_S` ago, with no connection
        failure seen since, is handed out as it is (HikariCP skips its check the same way: the round trip would
        cost more than the work of many orders); any other is tested with an empty query. A connection found
        broken makes the guard suspect the database, and the pool's other idle connections are checked at once:
        after a restart they are all broken, and the pool would otherwise hand them out one by one, backing off a
        second, then two, between them."""
        returned = self._returned_at.get(conn)
        if returned is not None and returned > self._failed_at and time.monotonic() - returned < TRUST_RECENT_S:
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception as exc:
            self.observe(exc)
            if self.pool is not None:
                # In a task of its own, shared by the callers that find broken connections meanwhile: the pool's
                # check() takes a cancellation for a broken connection, and must not swallow the guard's.
                if self._purging is None or self._purging.done():
                    self._purging = asyncio.ensure_future(self.pool.check())
                with contextlib.suppress(psycopg.Error):
                    await asyncio.shield(self._purging)
            raise

    def returned(self, conn: AsyncConnection) -> None:
        """A connection went back to the pool now (see `check_connection`)."""
        self._returned_at[conn] = time.monotonic()

    def stop_waiting(self, task: asyncio.Task, exc: BaseException | None) -> None:
        """`task` stops waiting for a pooled connection (with `exc`, or None if it got one). If the circuit opened
        meanwhile, the guard cancelled it; the pool hands back whatever it had (it is cancellation-safe), and here
        the cancellation is turned into `DatabaseDown`, as `asyncio.timeout` turns its own into `TimeoutError`.
        (Should the pool have taken the cancellation for something else and gone on waiting, what ended the wait is
        still answered with `DatabaseDown`.)"""
        self._waiting.discard(task)
        if task not in self._stopping:
            return
        self._stopping.discard(task)
        cancelled_by_others = task.uncancel() > 0
        if isinstance(exc, asyncio.CancelledError | PoolTimeout) and not cancelled_by_others:
            self.interrupted += 1
            raise self.down() from None

    def stats(self) -> dict[str, float | int | bool]:
        return {**super().stats(), "refused": self.refused, "interrupted": self.interrupted}


class GuardedPool(AsyncConnectionPool):
    """A pool whose `getconn()` (and so `connection()`) raises `DatabaseDown` at once while its guard's circuit is
    open, and stops waiting as soon as it opens."""

    def __init__(self, *args, guard: DatabaseGuard, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        guard.pool = self

    async def getconn(self, timeout: float | None = None) -> AsyncConnection:  # noqa: ASYNC109 - the pool's signature
        guard = self.guard
        guard.check()
        task = asyncio.current_task()
        assert task is not None  # a coroutine always runs in a task
        guard._waiting.add(task)
        try:
            conn = await super().getconn(timeout)
        except (asyncio.CancelledError, PoolTimeout) as exc:
            guard.stop_waiting(task, exc)
            raise
        except BaseException:
            guard.stop_waiting(task, None)
            raise
        guard.stop_waiting(task, None)
        return conn

    async def putconn(self, conn: AsyncConnection) -> None:
        self.guard.returned(conn)
        await super().putconn(conn)
