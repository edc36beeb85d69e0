"""Where the database is, and how to open connections and pools on it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from flashsale import config
from flashsale.db import embedded
from flashsale.db.guard import DatabaseGuard, GuardedPool


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the message says which one and why."""


def database_url(*, start_embedded: bool = True) -> str:
    """`FLASHSALE_DATABASE_URL` if set, else the embedded server's URL (started on first use)."""
    if (url := config.external_database_url()) is not None:
        return url
    info = embedded.running() if not start_embedded else embedded.start()
    if info is None:
        raise DatabaseUnavailable("the embedded PostgreSQL is not running (start it with `flashsale db up`)")
    ensure_database(info)
    return info.url()


def ensure_database(info: embedded.ServerInfo) -> None:
    with psycopg.connect(info.url("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config.DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{config.DATABASE_NAME}"')


def describe(url: str) -> str:
    """A URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    """A synchronous autocommit connection (CLI, migrations, audits)."""
    url = url or database_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to {describe(url)}: {_first_line(exc)}") from exc


async def connect_async(url: str | None = None, **kwargs) -> psycopg.AsyncConnection:
    url = url or database_url()
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to {describe(url)}: {_first_line(exc)}") from exc


def make_pool(
    url: str,
    *,
    size: int,
    timeout: float = 5.0,
    name: str = "flashsale",
    max_waiting: int = 0,
    check: bool = False,
    reconnect_timeout: float = 300.0,
    guard: DatabaseGuard | None = None,
) -> AsyncConnectionPool:
    """An autocommit pool of `size` connections, not yet opened: `await pool.open(wait=True)` before use.

    Autocommit because single statements must not pay for a BEGIN/COMMIT round trip; multi-statement order
    flows open their own transaction (`strategies.pipelined.pipelined_transaction`: BEGIN and COMMIT travel in the
    pipeline with the statements), so the logic layer owns the transaction.

    `timeout` bounds the wait for a free connection (then `PoolTimeout`); `max_waiting` bounds the queue of
    callers waiting for one (beyond it `TooManyRequests` at once; 0: unbounded). `check` tests a connection with
    an empty query before handing it out (one round trip), so that connections broken by a database restart are
    replaced instead of failing the caller's first statement; with a guard, only connections idle for more than
    `guard.TRUST_RECENT_S` (or returned before a connection failure) are tested.

    `reconnect_timeout` is how long the pool retries a lost connection in the background before giving the slot up
    (it is opened again when a caller needs it): services with a `DatabaseGuard` keep it short, so that the pool
    fills again as soon as the database is back.
    With a `guard`, the pool is a `GuardedPool`: callers are refused at once while the guard finds the database
    lost, and a failed check makes the guard look.
    """
    settings: dict[str, Any] = dict(
        min_size=size,
        max_size=size,
        timeout=timeout,
        name=name,
        open=False,
        max_waiting=max_waiting,
        reconnect_timeout=reconnect_timeout,
        kwargs=_POOL_CONNECTION_KWARGS,
    )
    if guard is not None:
        return GuardedPool(url, guard=guard, check=guard.check_connection if check else None, **settings)
    return AsyncConnectionPool(url, check=AsyncConnectionPool.check_connection if check else None, **settings)


_POOL_CONNECTION_KWARGS = {"autocommit": True, "connect_timeout": 5}


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


__all__ = [
    "DatabaseGuard",
    "DatabaseUnavailable",
    "connect",
    "connect_async",
    "database_url",
    "describe",
    "dict_row",
    "make_pool",
]
