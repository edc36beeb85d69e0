"""`flashsale.db.pipeline`: a transaction's statements through psycopg's libpq binding, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import errors, pq
from psycopg.rows import class_row

from flashsale.db import connection
from flashsale.db.pipeline import statements, transaction
from flashsale.domain import PlaceOrder
from flashsale.repositories import flash_sales, orders
from flashsale.repositories.rows import FlashSaleRecord
from tests.waiting import HANG_S, until_backend_gone, until_lock_waiters, until_no_lock_waiters


async def _prepared_here(conn) -> list[str]:
    cur = await conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'fs\\_%' ORDER BY name")
    return [row[0] for row in await cur.fetchall()]


async def test_rows_are_what_psycopg_reads(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)
    query = f"SELECT {flash_sales._COLUMNS} FROM flash_sales WHERE id = %s"
    expected = await (conn.cursor(row_factory=class_row(FlashSaleRecord))).execute(query, [made.flash_sale_id])
    async with transaction(conn) as tx:
        got = await tx.cursor(row_factory=class_row(FlashSaleRecord)).execute(query, [made.flash_sale_id])
        plain = await tx.execute("SELECT %(n)s::int + 1, %(s)s::text, NULL::uuid", {"n": 41, "s": "é"})
    (row,) = await got.fetchall()
    assert [row] == await expected.fetchall()  # UUIDs, timestamps with zone, ints: psycopg's types and values
    assert row.starts_at.utcoffset() == timedelta(0)
    assert await plain.fetchone() == (42, "é", None)
    assert await plain.fetchone() is None


async def test_a_block_without_reads_is_one_round_trip_and_each_read_adds_one(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)
    async with transaction(conn) as tx:
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 2)
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    assert tx.round_trips == 1  # BEGIN, two statements and COMMIT together
    async with transaction(conn) as tx:
        sale = await (await flash_sales.send_get_for_update(tx, made.flash_sale_id)).one()
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    assert tx.round_trips == 2  # the read, then the write with COMMIT
    assert sale is not None
    assert sale.remaining_inventory == 4
    after = await flash_sales.get(conn, made.flash_sale_id)
    assert after.remaining_inventory == 3
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE


async def test_statements_are_prepared_once_per_connection(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)
    for _ in range(3):
        async with transaction(conn) as tx:
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    assert len(await _prepared_here(conn)) == 1


async def test_a_failed_statement_rolls_back_everything_and_raises_psycopgs_error(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)
    sent = []

    async def oversell() -> None:
        async with transaction(conn) as tx:
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 100)
            sent.append(await tx.execute("SELECT %s::int * 2", [21]))  # its first use: a Parse, aborted too

    with pytest.raises(errors.CheckViolation):  # remaining_inventory >= 0
        await oversell()
    (after_error,) = sent
    assert await after_error.fetchone() is None  # not run: the pipeline was aborted
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 7
    async with transaction(conn) as tx:  # the connection, and its prepared statements, still work
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
        doubled = await tx.execute("SELECT %s::int * 2", [21])  # known as not prepared: prepared now
    assert tx.round_trips == 1
    assert await doubled.fetchone() == (42,)
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 6


async def test_an_error_in_the_block_rolls_back(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)

    async def fail_after_a_write() -> None:
        async with transaction(conn) as tx:
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
            await (await tx.execute("SELECT 1")).fetchone()  # the decrement ran, in the open transaction
            raise LookupError("the block's own")

    with pytest.raises(LookupError, match="the block's"):
        await fail_after_a_write()
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 7


async def test_statements_deallocated_by_psycopg_are_prepared_again(conn, make_scenario):
    """psycopg sends DEALLOCATE ALL after a rollback of its own: the next transaction finds its statements gone,
    rolls back and sends them again, prepared anew, before anything reached the caller."""
    made = await make_scenario(users=3, inventory=7)
    async with transaction(conn) as tx:
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    await conn.execute("DEALLOCATE ALL")
    assert await _prepared_here(conn) == []
    async with transaction(conn) as tx:
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    assert tx.round_trips == 2  # the one that found the statement missing, and the one sent again
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 5  # once, not twice
    assert len(await _prepared_here(conn)) == 1


async def test_a_statement_missing_after_rows_were_read_raises(conn, make_scenario):
    made = await make_scenario(users=3, inventory=7)
    async with transaction(conn) as tx:
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    await conn.execute("DEALLOCATE ALL")

    async def read_then_write() -> None:
        async with transaction(conn) as tx:
            await (await tx.execute("SELECT %s::int", [1])).fetchone()  # new: prepared here, read
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)  # gone, after a read: no resend

    with pytest.raises(errors.InvalidSqlStatementName):
        await read_then_write()
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 6
    async with transaction(conn) as tx:  # the names were forgotten: prepared again
        await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 5


async def test_cancelled_in_flight_cancels_on_the_server_and_closes_the_connection(database_url, conn, make_scenario):
    """A transaction cancelled while its round trip waits on a lock: the server is told to cancel (the UPDATE stops
    waiting, and the COMMIT sent with it never runs), and the connection is closed (a pool replaces it)."""
    made = await make_scenario(users=3, inventory=7)
    victim = await connection.connect_async(database_url)
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])

        async def order() -> None:
            async with transaction(victim) as tx:
                await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)

        task = asyncio.create_task(order())
        await until_lock_waiters(conn, 1)  # the victim's UPDATE waits on the row
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_S)
        assert victim.closed
        await until_no_lock_waiters(conn)  # cancelled on the server while this transaction still holds the row
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 7


async def test_a_repository_function_runs_the_same_on_a_connection_and_in_a_pipeline(conn, make_scenario):
    made = await make_scenario(users=2, inventory=7)
    user = (await (await conn.execute("SELECT id FROM users LIMIT 1")).fetchone())[0]
    async with transaction(conn) as tx:
        in_pipeline = await orders.confirmed_quantity(tx, user_id=user, flash_sale_id=made.flash_sale_id)
    assert in_pipeline == await orders.confirmed_quantity(conn, user_id=user, flash_sale_id=made.flash_sale_id) == 0

    async def order_for_nobody() -> None:
        async with transaction(conn) as tx:
            await (await flash_sales.send_get_for_update(tx, made.flash_sale_id)).one()
            await orders.send_insert_confirmed(tx, PlaceOrder(user_id=uuid.uuid4(), flash_sale_id=made.flash_sale_id))

    with pytest.raises(errors.ForeignKeyViolation):
        await order_for_nobody()


async def test_a_connection_lost_in_flight_fails_the_transaction(database_url, conn, make_scenario):
    """The server ends the backend while its round trip waits on a lock: the transaction raises psycopg's
    OperationalError at once (it does not wait forever on the socket), and the connection is closed."""
    made = await make_scenario(users=3, inventory=7)
    victim = await connection.connect_async(database_url)
    victim_pid = victim.info.backend_pid

    async def order() -> None:
        async with transaction(victim) as tx:
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)

    async with conn.transaction():
        await conn.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])
        task = asyncio.create_task(order())
        await until_lock_waiters(conn, 1)
        await conn.execute("SELECT pg_terminate_backend(%s)", [victim_pid])
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(task, HANG_S)
    assert victim.closed
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 7


async def test_a_connection_whose_server_went_away_fails_with_operational_error(database_url, conn, make_scenario):
    """A pooled connection whose backend ended while it was idle (a database restart): the next transaction
    fails with psycopg's OperationalError (the service answers it 503), promptly, and so does the one after."""
    made = await make_scenario(users=3, inventory=7)
    victim = await connection.connect_async(database_url)
    await conn.execute("SELECT pg_terminate_backend(%s)", [victim.info.backend_pid])
    await until_backend_gone(conn, victim.info.backend_pid)

    async def order() -> None:
        async with transaction(victim) as tx:
            await flash_sales.decrement_remaining(tx, made.flash_sale_id, 1)

    for _ in range(2):
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(order(), HANG_S)
    assert victim.closed
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 7


async def test_statements_without_begin_commit_each_round_trip_on_its_own(conn, make_scenario):
    """`statements`: no BEGIN or COMMIT; what one round trip sends commits together, a failed round trip rolls back
    only its own statements, and the connection is idle after."""
    made = await make_scenario(users=3, inventory=7)
    async with statements(conn) as p:
        await flash_sales.decrement_remaining(p, made.flash_sale_id, 1)
        sale = await (await flash_sales.send_get_for_update(p, made.flash_sale_id)).one()
    assert p.round_trips == 1
    assert sale is not None
    assert sale.remaining_inventory == 6

    async def second_round_trip_fails() -> None:
        async with statements(conn) as p:
            await flash_sales.decrement_remaining(p, made.flash_sale_id, 1)
            await (await p.execute("SELECT 1")).fetchone()  # the first round trip commits here
            await flash_sales.decrement_remaining(p, made.flash_sale_id, 1)
            await flash_sales.decrement_remaining(p, made.flash_sale_id, 100)  # fails its round trip

    with pytest.raises(errors.CheckViolation):
        await second_round_trip_fails()
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert (await flash_sales.get(conn, made.flash_sale_id)).remaining_inventory == 5
