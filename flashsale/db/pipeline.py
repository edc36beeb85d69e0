"""A transaction's statements sent in pipelined round trips through psycopg's libpq binding (`psycopg.pq`).

Why not psycopg's own pipeline. `conn.pipeline()` with `conn.execute` costs the client three to four times the CPU
that pgbench spends on the same round trip (`benchmarks/driver_floor.py`): each statement goes through a cursor,
the pipeline's queues and a non-blocking flush-and-fetch, and each wait for the server creates a future, a timer
and an add/remove of the socket reader. Here a transaction:

- queues its statements in libpq's buffer (nothing is written until a read needs an answer, or COMMIT);
- sends them with one Sync and reads every result of that round trip after one wake-up of the event loop, the
  socket's reader registered once for the whole transaction;
- runs every statement with parameters as a prepared statement of its own (`fs_1`, `fs_2`, ...), prepared in the
  same round trip as its first use on the connection.

What stays psycopg's: the connection (`conn.pgconn`), the SQL and its `%s` / `%(name)s` placeholders, the types of
the parameters and of the rows (psycopg's `Transformer` and `PostgresQuery` convert them, so rows hold what
`conn.execute` returns, row factories included; timestamps with a zone come in UTC rather than in the session's
zone: the same instants), and the exceptions (`psycopg.errors`).

Statements prepared here are forgotten by the server when psycopg deallocates its own (it sends DEALLOCATE ALL after
a rollback through psycopg). A round trip that finds one missing (SQLSTATE 26000) before the transaction has given
anything back to its caller is rolled back and sent again, statements prepared anew; a later one raises
`InvalidSqlStatementName`. Either way the connection's names are forgotten, so the next transaction prepares again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, pq
from psycopg._queries import PostgresQuery
from psycopg.abc import Buffer
from psycopg.adapt import Transformer
from psycopg.rows import RowFactory, tuple_row

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
_MISSING_STATEMENT = "26000"
_names = itertools.count(1)


class _Connection:
    """What this module keeps of one connection: the statements it prepared there ({(query, parameter types):
    name}) and the psycopg `Transformer` that converts its parameters and rows (made from the connection's
    adapters, so that it does not keep the connection alive)."""

    __slots__ = ("encoding", "names", "transformer")

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.encoding = conn.info.encoding
        self.transformer = Transformer(conn.adapters) if self.encoding == "utf-8" else Transformer(conn)


_CONNECTIONS: weakref.WeakKeyDictionary[pq.abc.PGconn, _Connection] = weakref.WeakKeyDictionary()


class _Sent:
    """A statement in a round trip: the Parse it may need (its first use on the connection), then its answer."""

    __slots__ = ("cursor", "formats", "params", "prepares", "query", "types")

    def __init__(
        self,
        cursor: Cursor | None,
        query: bytes,
        params: Sequence[Buffer | None] | None = None,  # None: sent as it is, unprepared
        types: tuple[int, ...] = (),
        formats: Sequence[pq.Format] | None = None,
    ) -> None:
        self.cursor = cursor
        self.query = query
        self.params = params
        self.types = types
        self.formats = formats
        self.prepares = False

    def steps(self) -> list[tuple[_Sent, bool]]:
        """The results this statement brings back, in order: (statement, is the Parse)."""
        return [(self, True), (self, False)] if self.prepares else [(self, False)]


class Cursor:
    """The answer to one statement of a `Pipeline`: its rows are read once its round trip has come back.

    Quacks like the part of psycopg's `AsyncCursor` that repositories use (`execute`, `fetchone`, `fetchall`,
    `rowcount`), so that a repository function runs unchanged on a connection or in a pipeline.
    """

    def __init__(self, pipeline: Pipeline, row_factory: RowFactory[Any]) -> None:
        self._pipeline = pipeline
        self._row_factory = row_factory
        self.pgresult: pq.abc.PGresult | None = None
        self._rows: list[Any] | None = None
        self._position = 0

    @property
    def _encoding(self) -> str:  # psycopg's row factories read the column names with it
        return self._pipeline.encoding

    async def execute(self, query: Any, params: Any = None) -> Cursor:
        self._pipeline.send(self, query, params)
        return self

    @property
    def rowcount(self) -> int:
        if self.pgresult is None or self.pgresult.command_tuples is None:
            return -1
        return self.pgresult.command_tuples

    async def fetchone(self) -> Any:
        rows = await self._all_rows()
        if self._position >= len(rows):
            return None
        self._position += 1
        return rows[self._position - 1]

    async def fetchall(self) -> list[Any]:
        rows = await self._all_rows()
        rest, self._position = rows[self._position :], len(rows)
        return rest

    async def _all_rows(self) -> list[Any]:
        if self._rows is None:
            if self.pgresult is None:
                await self._pipeline.sync()
            self._rows = self._pipeline.load_rows(self)
        return self._rows


class Pipeline:
    """Statements queued on one connection, sent in one round trip when an answer is needed (`sync`).

    Use it through `transaction`. Connection-like for repositories: `execute(query, params)` and
    `cursor(row_factory=...)` return a `Cursor` at once; reading a row waits for its round trip.
    """

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.round_trips = 0
        known = _CONNECTIONS.get(self.pgconn)
        if known is None:
            known = _CONNECTIONS[self.pgconn] = _Connection(conn)
        self.encoding = known.encoding
        self._prepared = known
        self._tx = known.transformer
        self._converter = PostgresQuery(self._tx)
        self._queued: list[_Sent] = []
        self._handed_out = False  # whether a round trip's results reached the caller (then no resend)
        self._loop = asyncio.get_running_loop()
        self._readable: asyncio.Future[None] | None = None
        self._reading: int | None = None  # the socket while its reader is registered
        self.pgconn.enter_pipeline_mode()

    # -- the connection-like surface ---------------------------------------------------------------------------
    def cursor(self, row_factory: RowFactory[Any] | None = None) -> Cursor:
        return Cursor(self, row_factory or tuple_row)

    async def execute(self, query: Any, params: Any = None) -> Cursor:
        cursor = Cursor(self, tuple_row)
        self.send(cursor, query, params)
        return cursor

    # -- sending -----------------------------------------------------------------------------------------------
    def send_command(self, command: bytes) -> None:
        """A statement without parameters or rows (BEGIN, COMMIT, ROLLBACK), not prepared."""
        self._queue(_Sent(None, command))

    def send(self, cursor: Cursor, query: Any, params: Any) -> None:
        converted = self._converter
        converted.convert(query, params)
        self._queue(_Sent(cursor, converted.query, converted.params, converted.types, converted.formats))

    def _queue(self, statement: _Sent) -> None:
        self._write(statement)
        self._queued.append(statement)

    def _write(self, statement: _Sent) -> None:
        if statement.params is None:
            self.pgconn.send_query_params(statement.query, None)
            return
        key = (statement.query, statement.types)
        name = self._prepared.names.get(key)
        statement.prepares = name is None
        if name is None:
            name = self._prepared.names[key] = f"fs_{next(_names)}".encode()
            self.pgconn.send_prepare(name, statement.query, param_types=statement.types)
        self.pgconn.send_query_prepared(name, statement.params, param_formats=statement.formats)

    # -- one round trip ----------------------------------------------------------------------------------------
    async def sync(self) -> None:
        """Send what is queued with a Sync and read every answer of the round trip. Raises the first statement's
        error (psycopg's exception for its SQLSTATE); the statements after it were not run."""
        if not self._queued:
            return
        sent, self._queued = self._queued, []
        error = await self._round_trip(sent)
        if error is not None and error.sqlstate == _MISSING_STATEMENT:
            self._prepared.names.clear()
            if not self._handed_out:  # nothing was read yet: roll back and send the same statements again
                failed = self.pgconn.transaction_status == pq.TransactionStatus.INERROR  # an explicit BEGIN's
                resend = [_Sent(None, b"ROLLBACK"), *sent] if failed else sent
                for statement in resend:
                    self._write(statement)
                error = await self._round_trip(resend)
        self._handed_out = True
        if error is not None:
            raise error

    async def _round_trip(self, sent: list[_Sent]) -> errors.Error | None:
        pgconn = self.pgconn
        pgconn.pipeline_sync()
        while pgconn.flush():  # the socket's buffer is full: wait until it can take more
            await self._wait_writable()
        self.round_trips += 1
        error: errors.Error | None = None
        expected = iter([step for statement in sent for step in statement.steps()])
        while True:
            while pgconn.is_busy():
                await self._wait_readable()
            result = pgconn.get_result()
            if result is None:  # the end of one step's results, or of the connection
                if pgconn.status != pq.ConnStatus.OK:
                    return error or psycopg.OperationalError("the connection to the server was lost")
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                return error
            if result.status == pq.ExecStatus.FATAL_ERROR:
                error = error or errors.error_from_result(result, encoding=self.encoding)
            step = next(expected, None)
            if step is None:  # a result of no statement: libpq's report of a lost connection
                continue
            statement, is_parse = step
            if is_parse:
                if result.status != pq.ExecStatus.COMMAND_OK:  # failed or not run: the name is not prepared
                    self._forget(statement)
            elif result.status in _OK and statement.cursor is not None:
                statement.cursor.pgresult = result

    def _forget(self, statement: _Sent) -> None:
        self._prepared.names.pop((statement.query, statement.types), None)

    # -- waiting on the socket ---------------------------------------------------------------------------------
    async def _wait_readable(self) -> None:
        if self._reading is None:
            self._reading = self.pgconn.socket
            self._loop.add_reader(self._reading, self._on_readable)
        self._readable = self._loop.create_future()
        await self._readable
        self._readable = None

    def _on_readable(self) -> None:
        waiter = self._readable
        try:
            self.pgconn.consume_input()
        except psycopg.OperationalError as exc:  # the connection is lost: the round trip fails with it
            self.stop_reading()
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_writable(self) -> None:
        ready = self._loop.create_future()
        fd = self.pgconn.socket
        self._loop.add_writer(fd, lambda: None if ready.done() else ready.set_result(None))
        try:
            await ready
        finally:
            self._loop.remove_writer(fd)

    # -- rows --------------------------------------------------------------------------------------------------
    def load_rows(self, cursor: Cursor) -> list[Any]:
        result = cursor.pgresult
        if result is None or result.status != pq.ExecStatus.TUPLES_OK:
            return []
        self._tx.set_pgresult(result)
        return self._tx.load_rows(0, result.ntuples, cursor._row_factory(cursor))  # type: ignore[arg-type]

    def stop_reading(self) -> None:
        if self._reading is not None:
            self._loop.remove_reader(self._reading)
            self._reading = None

    def close(self) -> None:
        """Stop reading the socket and leave pipeline mode (the connection is idle again)."""
        self.stop_reading()
        if self.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            self.pgconn.exit_pipeline_mode()


_BEGIN = {None: b"BEGIN", "serializable": b"BEGIN ISOLATION LEVEL SERIALIZABLE"}


class transaction:
    """BEGIN (at `isolation`: None or "serializable"), the block's statements, COMMIT, in as few round trips as the
    block's reads allow: BEGIN travels with the first statements and COMMIT with the last. If the block raises, or a
    statement fails, the transaction is rolled back and the first error raised.

    The connection must be in autocommit mode (as pool connections are), idle, and not in psycopg's pipeline. If
    the block is cancelled while a round trip is in flight, the connection is closed (its answers are unknown);
    a pool then replaces it. The server is asked to cancel what it runs first, as psycopg does for its own
    statements, so that a statement still waiting never commits.
    """

    def __init__(self, conn: AsyncConnection[Any], *, isolation: str | None = None) -> None:
        self.conn = conn
        self.begin: bytes | None = _BEGIN[isolation]
        self.commit: bytes | None = b"COMMIT"
        self.pipeline: Pipeline | None = None

    async def __aenter__(self) -> Pipeline:
        if self.conn.pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection is closed")
        if self.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise psycopg.ProgrammingError("a pipelined transaction needs an idle autocommit connection")
        self.pipeline = Pipeline(self.conn)
        if self.begin is not None:
            self.pipeline.send_command(self.begin)
        return self.pipeline

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        try:
            if exc is None:
                if self.commit is not None:
                    pipeline.send_command(self.commit)
                try:
                    await pipeline.sync()
                except psycopg.Error:
                    await self._roll_back(pipeline)
                    raise
            elif isinstance(exc, Exception):
                await self._roll_back(pipeline)
            else:  # cancelled (or interrupted) mid-transaction: what the server did is unknown
                await self._discard(pipeline)
        except BaseException:
            if not self.conn.closed and pipeline.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                await self._discard(pipeline)
            raise
        finally:
            pipeline.stop_reading()
            if not self.conn.closed:
                pipeline.close()

    async def _discard(self, pipeline: Pipeline) -> None:
        """Cancel what the server is running for this connection, then close it: a statement still waiting (on a
        lock) fails, and the COMMIT queued behind it never runs. One already past its wait may still commit."""
        pipeline.stop_reading()
        with contextlib.suppress(Exception):
            await self.conn.cancel_safe(timeout=5.0)
        await self.conn.close()

    @staticmethod
    async def _roll_back(pipeline: Pipeline) -> None:
        """Read what is still in flight, then ROLLBACK if a transaction is open (on a lost connection, nothing: the
        server rolls back, and the pool replaces the connection)."""
        with contextlib.suppress(psycopg.Error):  # the block's own error is the one to raise
            await pipeline.sync()
        if pipeline.pgconn.status != pq.ConnStatus.OK:
            return
        if pipeline.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            pipeline.send_command(b"ROLLBACK")
            await pipeline.sync()


class statements(transaction):
    """The block's statements without BEGIN and COMMIT: those sent together (up to a read) run as one implicit
    transaction and commit when they succeed, as a single statement does on an autocommit connection. For flows
    that send one statement a round trip outside any transaction (`procedure`, `optimistic`), at the pipeline's
    cost rather than psycopg's cursor's. A failed statement rolls back its round trip's statements only."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        super().__init__(conn)
        self.begin = self.commit = None


Conn = AsyncConnection[Any] | Pipeline
"""What a repository function runs its statement on: a connection, or a pipelined transaction on one."""

__all__ = ["Conn", "Cursor", "Pipeline", "statements", "transaction"]
