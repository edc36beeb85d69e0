"""The database guard: which errors mean the database is gone, and the circuit's states (with a scripted probe)."""

import asyncio

import psycopg
import pytest
from psycopg import errors
from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests

from flashsale.db import guard as guard_module
from flashsale.db.connection import make_pool
from flashsale.db.guard import TRUST_RECENT_S, DatabaseDown, DatabaseGuard, is_connection_failure
from tests.waiting import HANG_S, until


class TestConnectionFailures:
    @pytest.mark.parametrize(
        "exc",
        [
            psycopg.OperationalError("server closed the connection unexpectedly"),
            errors.AdminShutdown("terminating connection due to administrator command"),
            errors.CannotConnectNow("the database system is starting up"),
            errors.CrashShutdown("terminating connection because of crash of another server process"),
            errors.ConnectionFailure("connection failure"),
            errors.ConnectionTimeout("connection timeout expired"),
        ],
    )
    def test_the_connection_or_the_server_is_gone(self, exc):
        assert is_connection_failure(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            PoolTimeout("couldn't get a connection after 5.00 sec"),
            TooManyRequests("the pool has already 1000 requests waiting"),
            PoolClosed("the pool is closed"),
            errors.LockNotAvailable("could not obtain lock on row"),
            errors.QueryCanceled("canceling statement due to lock timeout"),
            errors.SerializationFailure("could not serialize access"),
            errors.UniqueViolation("duplicate key value"),
            errors.PipelineAborted("pipeline aborted"),
            ValueError("not a database error"),
        ],
    )
    def test_a_failed_statement_or_a_busy_pool_is_not(self, exc):
        assert not is_connection_failure(exc)


class ScriptedGuard(DatabaseGuard):
    """A guard whose probe answers from a script instead of connecting."""

    def __init__(self, answers: list[bool]) -> None:
        super().__init__("postgresql:///unused", probe_interval_s=0.001, retry_after_s=2.0)
        self.answers = answers
        self.probes = 0

    async def probe(self) -> bool:
        self.probes += 1
        return self.answers.pop(0)


async def wait_until(predicate) -> None:
    """Poll the guard's state (it has no event to wait on), until the suite's hang bound."""
    async with asyncio.timeout(HANG_S):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)


class TestCircuit:
    async def test_opens_when_the_database_does_not_answer_and_closes_when_it_does(self):
        guard = ScriptedGuard([False, False, True])  # the first probe confirms the loss
        guard.check()  # closed: passes
        assert guard.observe(errors.AdminShutdown("terminating connection"))
        await wait_until(lambda: guard.is_open)
        with pytest.raises(DatabaseDown) as refused:
            guard.check()
        assert refused.value.retry_after_s == 2.0
        assert refused.value.code == "unavailable"
        assert isinstance(refused.value, psycopg.OperationalError)
        await wait_until(lambda: not guard.is_open)
        guard.check()
        assert guard.probes == 3
        stats = guard.stats()
        assert (stats["open"], stats["trips"], stats["refused"], stats["false_alarms"]) == (False, 1, 1, 0)
        assert stats["open_s"] > 0
        assert guard.last_cause == "AdminShutdown: terminating connection"

    async def test_a_lone_broken_connection_is_a_false_alarm(self):
        guard = ScriptedGuard([True])  # the database answers at once: only that connection was lost
        guard.observe(errors.AdminShutdown("terminating connection"))
        await wait_until(lambda: guard.probes == 1 and guard._watch is None)
        guard.check()
        assert guard.stats()["false_alarms"] == 1
        assert guard.stats()["trips"] == 0

    async def test_other_errors_are_not_looked_into(self):
        guard = ScriptedGuard([])
        assert not guard.observe(PoolTimeout("couldn't get a connection"))
        assert not guard.observe(errors.SerializationFailure("could not serialize"))
        assert not guard.observe(DatabaseDown())
        guard.check()
        assert guard.probes == 0

    async def test_failures_while_it_looks_do_not_start_another_look(self):
        guard = ScriptedGuard([False, False, True])
        guard.observe(errors.AdminShutdown("first"))
        guard.observe(errors.AdminShutdown("second"))
        await wait_until(lambda: guard.is_open)
        guard.observe(errors.AdminShutdown("third"))
        await wait_until(lambda: not guard.is_open)
        assert guard.stats()["trips"] == 1
        assert guard.probes == 3
        assert guard.last_cause == "AdminShutdown: first"

    async def test_callers_waiting_for_a_connection_are_stopped_when_it_opens(self, tmp_path):
        """A real pool on a server that is not there: its callers wait for a connection until the circuit opens."""
        guard = ScriptedGuard([False] * 10_000)
        pool = make_pool(f"postgresql://postgres@/x?host={tmp_path}&port=1", size=1, timeout=30, guard=guard)
        await pool.open(wait=False)
        try:
            waiters = [asyncio.create_task(pool.getconn()) for _ in range(3)]
            await until(lambda: pool.get_stats().get("requests_waiting") == 3, "three callers waiting")
            waiters[2].cancel()  # cancelled by someone else too: stays a cancellation
            guard.observe(errors.AdminShutdown("gone"))
            async with asyncio.timeout(2):
                results = await asyncio.gather(*waiters, return_exceptions=True)
            assert [type(r) for r in results] == [DatabaseDown, DatabaseDown, asyncio.CancelledError]
            assert guard.stats()["interrupted"] == 2
            with pytest.raises(DatabaseDown):  # and while it stays open, at once
                await pool.getconn()
        finally:
            await guard.stop()
            await pool.close()

    async def test_stop_ends_the_probe(self):
        guard = ScriptedGuard([False] * 10_000)
        guard.suspect("gone")
        await wait_until(lambda: guard.is_open)
        await guard.stop()
        probes = guard.probes
        await asyncio.sleep(0.01)
        assert guard.probes == probes
        guard.suspect("after stop")  # ignored: nothing left to probe with
        assert guard.stats()["trips"] == 1

    async def test_the_real_probe_says_no_for_a_server_that_is_not_there(self, tmp_path):
        guard = DatabaseGuard(f"postgresql://postgres@/flashsale?host={tmp_path}&port=1")
        assert await guard.probe() is False


class Connection:
    """A pooled connection, as far as the guard's bookkeeping goes (it keeps them in a weak dictionary)."""


class FakeClock:
    """Stands in for the guard's `time` module: `monotonic()` moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class TestRecentConnectionsSkipTheCheck:
    """The pool's check: a connection returned less than TRUST_RECENT_S ago (and no failure since) is handed out
    untested; one idle longer, or returned before a connection failure, is tested with an empty query."""

    @pytest.fixture
    def clock(self, monkeypatch):
        fake = FakeClock()
        monkeypatch.setattr(guard_module, "time", fake)
        return fake

    @pytest.fixture
    def tested(self, monkeypatch):
        """The connections the guard tested (the pool's own check, which would send the empty query)."""
        seen = []

        async def check_connection(conn):
            seen.append(conn)

        monkeypatch.setattr(guard_module.AsyncConnectionPool, "check_connection", staticmethod(check_connection))
        return seen

    async def test_a_recently_returned_connection_is_not_tested(self, clock, tested):
        guard, conn = ScriptedGuard([]), Connection()
        guard.returned(conn)
        clock.now += TRUST_RECENT_S * 0.9
        await guard.check_connection(conn)
        assert tested == []

    async def test_a_connection_idle_longer_is_tested(self, clock, tested):
        guard, conn = ScriptedGuard([]), Connection()
        guard.returned(conn)
        clock.now += TRUST_RECENT_S * 1.1
        await guard.check_connection(conn)
        assert tested == [conn]

    async def test_a_connection_never_returned_is_tested(self, clock, tested):
        guard, conn = ScriptedGuard([]), Connection()
        await guard.check_connection(conn)
        assert tested == [conn]

    async def test_a_failure_seen_since_its_return_makes_a_recent_one_tested(self, clock, tested):
        guard, conn = ScriptedGuard([True] * 10), Connection()
        guard.returned(conn)
        clock.now += TRUST_RECENT_S * 0.1
        assert guard.observe(errors.AdminShutdown("another connection was lost"))
        await guard.stop()
        clock.now += TRUST_RECENT_S * 0.1
        await guard.check_connection(conn)
        assert tested == [conn]
