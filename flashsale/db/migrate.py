"""Ordered SQL migrations shipped inside the package, applied once each and recorded in `schema_migrations`."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

# Any constant works; it only has to be the same for every process that migrates this database.
_MIGRATION_LOCK = 0x666C617368  # "flash"


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("flashsale.db") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(version=f.name.removesuffix(".sql"), sql=f.read_text()) for f in files]


def applied(conn: psycopg.Connection) -> list[str]:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return []
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return the versions applied.

    An advisory lock makes concurrent callers (tests, a service and a load run starting together) take turns.
    """
    newly: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = set(applied(conn))
        for migration in available():
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [migration.version])
            newly.append(migration.version)
    return newly


def ready_url(url: str | None = None) -> str:
    """`url` (default: FLASHSALE_DATABASE_URL, else the embedded server, started if need be), migrated: what every
    command and the load runner connect to (the migrations are idempotent)."""
    from flashsale.db import connection

    url = url or connection.database_url()
    with connection.connect(url) as conn:
        migrate(conn)
    return url
