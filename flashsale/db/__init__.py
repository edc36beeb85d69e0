"""Database plumbing: the embedded server, connections and migrations. Nothing here knows about orders."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def sqlalchemy_url(url: str) -> str:
    """A libpq URL (`postgresql://...` or `postgres://...`) as SQLAlchemy's URL for psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ValueError("expected a postgresql:// URL")
    return f"postgresql+psycopg://{rest}"


def engine(url: str | None = None) -> Engine:
    """A SQLAlchemy engine on the project's database (`connection.database_url()`, or `url`), psycopg 3 underneath,
    for `pandas.read_sql` in notebooks and interactive sessions: `pd.read_sql("SELECT ...", db.engine())`.

    It keeps no connection open between queries (NullPool), so a restarted server or a reset scenario never meets a
    stale one, and an idle notebook holds nothing the load runs could wait for.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from flashsale.db.connection import database_url

    return create_engine(sqlalchemy_url(url or database_url()), poolclass=NullPool)
