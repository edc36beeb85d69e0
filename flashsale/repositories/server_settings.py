"""The server facts every measurement is reported with."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from flashsale.repositories.pending import fetch_one

SETTINGS = ("server_version", "synchronous_commit", "max_connections", "shared_buffers", "fsync")


async def read(conn: AsyncConnection) -> dict[str, Any]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT " + ", ".join(f"current_setting('{name}') AS {name}" for name in SETTINGS))
    return await fetch_one(cur)
