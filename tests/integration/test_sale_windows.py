"""The sale windows `--accept async` refuses early from (`flashsale.services.sale_windows`): the cache follows a
window moved in the database through PostgreSQL's notification, not its expiry; a sale it cannot find is None; and
the refusal at acceptance keeps the idempotency policy (a retry of an accepted order is still its replay)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flashsale.db import connection
from flashsale.domain import PlaceOrder, SaleNotActive
from flashsale.repositories import flash_sales, users
from flashsale.services import settlement
from flashsale.services.sale_windows import CHANNEL, SaleWindows
from tests.waiting import until_async

HOUR = timedelta(hours=1)


@pytest.fixture
async def windows(database_url):
    cache = SaleWindows(database_url, max_age_s=3600.0)  # nothing expires during a test: only notifications count
    await cache.start()
    try:
        await until_async(lambda: _set(cache.listening), "the cache to listen")
        yield cache
    finally:
        await cache.stop()


async def _set(event) -> bool:
    return event.is_set()


async def move_window(database_url, sale_id, starts_at: datetime) -> None:
    conn = await connection.connect_async(database_url)
    async with conn:
        await flash_sales.set_window(conn, sale_id, starts_at, starts_at + 2 * HOUR)


async def test_a_window_moved_in_the_database_reaches_the_cache(windows, pool, make_scenario, database_url):
    sale = (await make_scenario()).flash_sale_id
    now = datetime.now(UTC)
    await move_window(database_url, sale, now + HOUR)  # not open yet
    assert await windows.is_open(pool, sale) is False

    await move_window(database_url, sale, now - HOUR)  # open for another hour: only the notification can say so
    await until_async(lambda: windows.is_open(pool, sale), "the cache to see the sale open")
    await move_window(database_url, sale, now - 3 * HOUR)  # closed an hour ago
    await until_async(lambda: _not(windows.is_open(pool, sale)), "the cache to see the sale closed")


async def _not(probe) -> bool:
    return (await probe) is False


async def test_a_sale_the_database_does_not_have_is_none(windows, pool, make_scenario):
    await make_scenario()
    assert await windows.is_open(pool, uuid.uuid4()) is None


async def test_a_refusal_at_acceptance_answers_a_retry_with_its_order(pool, make_scenario):
    made = await make_scenario(users=3)
    async with pool.connection() as conn:
        user = (await users.list_ids(conn, limit=1))[0]
    command = PlaceOrder(user, made.flash_sale_id, 1, idempotency_key="early-1")
    accepted = await settlement.accept(pool, command)  # accepted while the sale was open
    refusal = SaleNotActive(made.flash_sale_id)
    again = await settlement.refuse(pool, command, refusal)  # the sale has closed since: a retry is still its replay
    assert (again.order.id, again.replayed) == (accepted.order.id, True)
    with pytest.raises(SaleNotActive):
        await settlement.refuse(pool, PlaceOrder(user, made.flash_sale_id, 1, idempotency_key="early-2"), refusal)
    with pytest.raises(SaleNotActive):
        await settlement.refuse(pool, PlaceOrder(user, made.flash_sale_id, 1), refusal)


async def test_the_listener_back_after_a_lost_connection_drops_what_it_may_have_missed(
    windows, pool, make_scenario, database_url
):
    sale = (await make_scenario()).flash_sale_id
    await move_window(database_url, sale, datetime.now(UTC) + HOUR)
    assert await windows.is_open(pool, sale) is False
    conn = await connection.connect_async(database_url)
    async with conn:  # end the listener's session, as a restarted database would
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s", [f"LISTEN {CHANNEL}"]
        )
    await until_async(lambda: _not_set(windows.listening), "the listener to see its connection lost")
    await move_window(database_url, sale, datetime.now(UTC) - HOUR)  # while nobody listens: no notification
    await until_async(lambda: windows.is_open(pool, sale), "the cache to see the sale open after reconnecting")


async def _not_set(event) -> bool:
    return not event.is_set()
