"""Advisory locks: locks on an idea rather than a row, held until the caller's transaction ends."""

from __future__ import annotations

from uuid import UUID

from flashsale.db.pipeline import Conn

_LOCK_BUYER = "SELECT pg_advisory_xact_lock(hashtext(%s::text), hashtext(%s::text))"


async def lock_buyer(conn: Conn, flash_sale_id: UUID, user_id: UUID) -> None:
    """Wait until no other transaction holds this user's lock on this sale, then hold it until commit.

    Serialises the orders of one user on one sale (and, on a 32-bit hash collision, of two unrelated users:
    harmless), so that a statement run after it reads every order the user already has.
    """
    await conn.execute(_LOCK_BUYER, [flash_sale_id, user_id])
