from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import User
from flashsale.repositories.pending import fetch_one
from flashsale.repositories.rows import UserRecord

_COLUMNS = "id, number, name, created_at"


async def get(conn: AsyncConnection, user_id: UUID) -> User | None:
    cur = conn.cursor(row_factory=class_row(UserRecord))
    record = await (await cur.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", [user_id])).fetchone()
    return record.to_domain() if record else None


async def list_ids(conn: AsyncConnection, *, limit: int, offset: int = 0) -> list[UUID]:
    """User ids in a stable order (the load runner's setup reads them, as the seed's k6 script did)."""
    cur = await conn.execute("SELECT id FROM users ORDER BY id LIMIT %s OFFSET %s", [limit, offset])
    return [row[0] for row in await cur.fetchall()]


async def list_all(conn: AsyncConnection, *, limit: int | None = None, offset: int = 0) -> list[User]:
    """Users in the same stable order as `list_ids`; every one from `offset` on when `limit` is None."""
    cur = conn.cursor(row_factory=class_row(UserRecord))
    await cur.execute(f"SELECT {_COLUMNS} FROM users ORDER BY id LIMIT %s OFFSET %s", [limit, offset])
    return [record.to_domain() for record in await cur.fetchall()]


async def count(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM users")
    return (await fetch_one(cur))[0]


async def insert(conn: AsyncConnection, name: str) -> User:
    cur = conn.cursor(row_factory=class_row(UserRecord))
    await cur.execute(f"INSERT INTO users (name) VALUES (%s) RETURNING {_COLUMNS}", [name])
    return (await fetch_one(cur)).to_domain()


async def insert_many(conn: AsyncConnection, how_many: int, *, name_prefix: str = "user") -> int:
    """Create `how_many` users in one statement; returns how many were created."""
    cur = await conn.execute(
        "INSERT INTO users (name) SELECT %s || '-' || n FROM generate_series(1, %s) AS n",
        [name_prefix, how_many],
    )
    return cur.rowcount
