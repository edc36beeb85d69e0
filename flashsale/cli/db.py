"""`flashsale db ...`: the database the project runs on."""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from flashsale import aio, config, placement
from flashsale.cli.output import add_json_command, emit
from flashsale.db import connection, embedded, migrate
from flashsale.units import duration


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="start, inspect and reset the database")
    commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")

    add_json_command(
        commands, "up", cmd_up, "start the embedded PostgreSQL (unless FLASHSALE_DATABASE_URL is set) and migrate"
    )
    add_json_command(commands, "down", cmd_down, "stop the embedded PostgreSQL by its pid")
    add_json_command(commands, "url", cmd_url, "print the database URL (libpq) everything connects to")
    add_json_command(
        commands, "status", cmd_status, "is the database up, which version, which migrations, what scenario"
    )

    reset = add_json_command(commands, "reset", cmd_reset, "empty the tables and create a fresh flash-sale scenario")
    reset.add_argument("--users", type=int, default=100, help="users to create (default 100)")
    reset.add_argument("--inventory", type=int, default=50, help="units for sale (default 50)")
    reset.add_argument("--per-user-limit", type=int, default=1, help="units one user may buy (default 1)")
    reset.add_argument("--sale-window", type=duration, default="1h", help="how long the sale is open (default 1h)")
    reset.add_argument(
        "--starts-in", type=duration, default="0s", help="when the sale opens, from now (default 0s: open now)"
    )
    reset.add_argument("--shards", type=int, default=8, help="inventory shards for the `sharded` strategy (default 8)")


def cmd_up(args: argparse.Namespace) -> int:
    url = connection.database_url()
    with connection.connect(url) as conn:
        applied = migrate.migrate(conn)
    info = embedded.running() if config.external_database_url() is None else None
    emit(
        args,
        {"url": url, "embedded": info is not None, "pid": info.pid if info else None, "migrations_applied": applied},
        f"database ready at {url}"
        + (f" (embedded, pid {info.pid})" if info else "")
        + (f"; applied {', '.join(applied)}" if applied else ""),
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if config.external_database_url() is not None:
        emit(args, {"stopped": None}, "FLASHSALE_DATABASE_URL is set: the external server is not ours to stop")
        return 0
    pid = embedded.stop()
    emit(
        args,
        {"stopped": pid},
        f"stopped embedded PostgreSQL (pid {pid})" if pid else "embedded PostgreSQL was not running",
    )
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    url = connection.database_url()
    emit(args, {"url": url}, url)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    external = config.external_database_url()
    info = None if external else embedded.running()
    if external is None and info is None:
        emit(
            args,
            {"running": False, "embedded": True, "pgdata": str(embedded.default_pgdata())},
            f"embedded PostgreSQL is not running (data directory {embedded.default_pgdata()})",
        )
        return 0
    url = connection.database_url(start_embedded=False)
    with connection.connect(url) as conn:
        version = _scalar(conn, "SHOW server_version")
        applied = migrate.applied(conn)
        pending = [m.version for m in migrate.available() if m.version not in applied]
        sales = _scalar(conn, "SELECT count(*) FROM flash_sales") if applied else 0
        users = _scalar(conn, "SELECT count(*) FROM users") if applied else 0
    data = {
        "running": True,
        "embedded": info is not None,
        "pid": info.pid if info else None,
        "url": url,
        "server_version": version,
        "migrations": applied,
        "pending_migrations": pending,
        "flash_sales": sales,
        "users": users,
        "cpus": (placement.affinity_of(info.pid) if info else None),  # where the postmaster may run now
    }
    text = "\n".join(
        [
            f"running: PostgreSQL {version}"
            + (f" (embedded, pid {info.pid}, on CPUs {data['cpus']})" if info else " (external)"),
            f"url: {url}",
            f"migrations: {', '.join(applied) or 'none'}" + (f" (pending: {', '.join(pending)})" if pending else ""),
            f"scenario: {users} users, {sales} flash sales",
        ]
    )
    emit(args, data, text)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from flashsale.services import scenario

    sale = dict(users=args.users, inventory=args.inventory, per_user_limit=args.per_user_limit, shards=args.shards)
    scenario.validate(**sale, window=args.sale_window)  # before the database is started for nothing
    url = migrate.ready_url()

    async def go():
        conn = await connection.connect_async(url)
        async with conn:
            return await scenario.reset(conn, **sale, window=args.sale_window, starts_in=args.starts_in)

    made = aio.run(go())
    emit(
        args,
        {
            "flash_sale_id": str(made.flash_sale_id),
            "users": made.users,
            "inventory": made.inventory,
            "per_user_limit": made.per_user_limit,
            "starts_at": made.starts_at,
            "ends_at": made.ends_at,
            "shards": made.shards,
        },
        f"flash sale {made.flash_sale_id}: {made.inventory} units, limit {made.per_user_limit} per user, "
        f"{made.users} users, open {made.starts_at:%H:%M:%S} to {made.ends_at:%H:%M:%S} UTC",
    )
    return 0


def _scalar(conn: psycopg.Connection, sql: str) -> Any:
    """The one value of a statement that returns one row."""
    row = conn.execute(sql).fetchone()
    if row is None:
        raise LookupError(f"{sql} returned no row")
    return row[0]
