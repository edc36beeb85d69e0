from __future__ import annotations

from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row

from flashsale.domain import Product
from flashsale.repositories.pending import fetch_one
from flashsale.repositories.rows import ProductRecord

_COLUMNS = "id, name, price_cents, created_at"


async def insert(conn: AsyncConnection, *, name: str, price_cents: int) -> Product:
    cur = conn.cursor(row_factory=class_row(ProductRecord))
    await cur.execute(
        f"INSERT INTO products (name, price_cents) VALUES (%s, %s) RETURNING {_COLUMNS}", [name, price_cents]
    )
    return (await fetch_one(cur)).to_domain()


async def get(conn: AsyncConnection, product_id: UUID) -> Product | None:
    cur = conn.cursor(row_factory=class_row(ProductRecord))
    record = await (await cur.execute(f"SELECT {_COLUMNS} FROM products WHERE id = %s", [product_id])).fetchone()
    return record.to_domain() if record else None
