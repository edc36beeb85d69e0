"""A strategy warms every connection of its pool before the first real order (`OrderStrategy.warm_up`): each
backend has run the strategy's reads often enough for psycopg to prepare them, nothing was written, and the
strategy's counters are as they were."""

import asyncio

import pytest

from flashsale import strategies
from flashsale.db import connection
from flashsale.load.transactions import TransactionCounter
from flashsale.strategies.base import OrderStrategy

SIZE = 4


@pytest.mark.parametrize("name", strategies.names())
async def test_every_connection_is_warmed_and_nothing_is_written(
    name, database_url, make_scenario, make_strategy, conn
):
    made = await make_scenario(users=5, inventory=10)
    strategy: OrderStrategy = make_strategy(name)
    pool = connection.make_pool(database_url, size=SIZE)
    await pool.open(wait=True)
    try:
        await strategy.start(pool)
        strategy.counters["before"] = 7
        before = dict(strategy.counters)  # with what `start` counted (redis_gate: its rebuilds)
        await strategy.warm_up(pool)
        assert dict(strategy.counters) == before

        held, everyone = [], asyncio.Barrier(SIZE + 1)

        async def prepared_here() -> None:
            async with pool.connection() as c:
                held.append((await (await c.execute("SELECT count(*) FROM pg_prepared_statements")).fetchone())[0])
                await everyone.wait()  # every connection of the pool is looked at, not one of them four times

        tasks = [asyncio.create_task(prepared_here()) for _ in range(SIZE)]
        await everyone.wait()
        await asyncio.gather(*tasks)
        assert len(held) == SIZE
        assert min(held) >= 1, held
    finally:
        await pool.close()
    orders = (await (await conn.execute("SELECT count(*) FROM orders")).fetchone())[0]
    remaining = (await (await conn.execute("SELECT remaining_inventory FROM flash_sales")).fetchone())[0]
    assert (orders, remaining) == (0, made.inventory)


async def test_the_warm_up_is_published_before_a_count_of_transactions_begins(
    database_url, make_scenario, make_strategy
):
    """PostgreSQL holds a busy session's statistics back up to a second, then reports them with its next work: a
    count of the database's transactions begun after the warm-up (a load run's) must not see the warm-up's."""
    await make_scenario(users=5, inventory=10)
    strategy = make_strategy("pessimistic")
    counter = TransactionCounter(database_url)
    await counter.begin()  # before the pool: the count waits for its sessions to exit, and so has all they did
    pool = connection.make_pool(database_url, size=8)
    await pool.open(wait=True)
    try:
        await strategy.start(pool)
        await strategy.warm_up(pool)  # six refused orders a connection: 48 transactions
        await counter.mark()
    finally:
        await pool.close()
    assert await counter.count() < 8
