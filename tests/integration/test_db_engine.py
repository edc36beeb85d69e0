"""`flashsale.db.engine()`: pandas reads the real database through SQLAlchemy on the same URL as psycopg, and the
analysis functions that query it directly (orders over time, the audit, lock waits) agree with what was placed."""

import pandas as pd
import pytest

from flashsale import db
from flashsale.domain import PlaceOrder
from flashsale.experiments import analysis
from flashsale.repositories import users
from flashsale.strategies import get_strategy
from tests.waiting import until_async


@pytest.fixture
def engine(database_url):
    made = db.engine(database_url)
    yield made
    made.dispose()


async def place(conn, made, count):
    strategy = get_strategy("pessimistic")
    for user_id in (await users.list_ids(conn, limit=count))[:count]:
        await strategy.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))


class TestEngine:
    def test_uses_psycopg_3_on_the_given_url(self, engine, database_url):
        assert engine.dialect.driver == "psycopg"
        assert engine.url.database == db.engine(database_url).url.database

    async def test_pandas_reads_the_rows_psycopg_wrote(self, engine, conn, make_scenario):
        made = await make_scenario(users=7, inventory=5)
        frame = pd.read_sql("SELECT count(*) AS users FROM users", engine)
        assert frame["users"].tolist() == [7]
        sales = pd.read_sql("SELECT id FROM flash_sales", engine)
        assert [str(i) for i in sales["id"]] == [str(made.flash_sale_id)]

    def test_a_url_that_is_not_postgresql_is_refused(self):
        with pytest.raises(ValueError, match="postgresql://"):
            db.sqlalchemy_url("mysql://somewhere/db")
        assert db.sqlalchemy_url("postgres://u@h/d?host=/tmp") == "postgresql+psycopg://u@h/d?host=/tmp"


class TestQueries:
    async def test_orders_over_time_counts_every_confirmed_order(self, engine, conn, make_scenario):
        made = await make_scenario(users=10, inventory=4)
        await place(conn, made, 3)
        frame = analysis.orders_over_time(engine, made.flash_sale_id)
        assert frame["orders"].sum() == 3
        assert frame["second"].min() == 0

    async def test_the_database_audit_sees_stock_sold_and_nothing_oversold(self, engine, conn, make_scenario):
        made = await make_scenario(users=10, inventory=4)
        await place(conn, made, 3)
        (row,) = analysis.database_audit(engine).to_dict("records")
        assert str(row["flash_sale_id"]) == str(made.flash_sale_id)
        assert (row["inventory"], row["remaining"], row["sold"], row["orders"]) == (4, 1, 3, 3)
        assert row["oversold"] == row["limit_violations"] == 0

    async def test_lock_waits_is_empty_when_nobody_waits(self, engine, make_scenario):
        await make_scenario()
        assert analysis.lock_waits(engine).empty

    async def test_lock_waits_sees_a_session_queued_on_the_sale_row(self, engine, database_url, make_scenario):
        import asyncio

        from flashsale.db import connection

        made = await make_scenario()
        holder = await connection.connect_async(database_url)
        waiter = await connection.connect_async(database_url)
        async with holder, waiter:
            await holder.execute("BEGIN")
            await holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])
            queued = asyncio.create_task(
                waiter.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])
            )
            seen = []

            async def a_wait_seen() -> bool:
                seen.append(await asyncio.to_thread(analysis.lock_waits, engine))
                return not seen[-1].empty

            await until_async(a_wait_seen, "the queued session in the lock waits")
            waits = seen[-1]
            await holder.execute("COMMIT")
            await queued
        assert waits["sessions"].sum() == 1
        assert set(waits["wait_event"]) <= {"tuple", "transactionid"}
