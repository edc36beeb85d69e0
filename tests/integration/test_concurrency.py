"""Real concurrent connections racing for one sale, then an audit of what the database holds: for every safe
strategy, and for `unsafe`, which must be caught.

A race that happens to run one buyer after the other would pass any audit, so every race here is forced: the
buyers are released while another transaction holds the sale (and its shards), the test waits until they provably
queue on it (sessions seen waiting on the lock in `pg_stat_activity`, or NOWAIT failures counted), and only then
lets them go; each test then asserts the contention it forced (waiters seen, conflicts or retries counted).
"""

import asyncio
import math
from collections import Counter
from types import SimpleNamespace

import pytest
from psycopg import errors

from flashsale import strategies
from flashsale.repositories import orders, users
from flashsale.services.audit import audit_sale
from flashsale.services.crowd import CrowdResult, buy_concurrently, crowd_commands
from flashsale.strategies import unsafe as unsafe_module
from tests.waiting import HANG_S, lock_waiters, until, until_async, until_lock_waiters

SAFE = strategies.names(safe=True)
WAVE = 70  # the pool's size: every buyer of a wave holds its own connection
# Several batches in flight at once, each queuing on the sale row in turn (one worker would race with nobody).
SETTINGS = {"batched": {"workers": 4, "batch_size": 8}}

# The holder's write moves the row's version on (its trigger), so that every optimistic or serializable write
# queued behind it must find the row changed; locking the shards makes `sharded`'s buyers queue too.
HOLD_SALE = "UPDATE flash_sales SET remaining_inventory = remaining_inventory WHERE id = %s"
HOLD_SHARDS = "SELECT 1 FROM flash_sale_shards WHERE flash_sale_id = %s FOR UPDATE"


@pytest.fixture(params=SAFE)
def strategy(request, make_strategy):
    return make_strategy(request.param, patient=True, **SETTINGS.get(request.param, {}))


async def contended(holder, watcher, pool, strategy, commands, sale_id) -> tuple[CrowdResult, int]:
    """`buy_concurrently`, forced to contend: the crowd is released while `holder` holds the sale, and the sale is
    let go once every buyer provably queues on it (or was refused without needing it: a read-and-check strategy
    refuses a user at the limit without writing). Returns the crowd's result and the lock waiters seen then."""
    finished = 0
    refused_at_the_lock: set[asyncio.Task] = set()  # the buyers (their tasks) whose NOWAIT failed at least once
    if strategy.name == "pessimistic_nowait":
        retrying = strategy.with_retries

        async def with_retries(attempt, **kwargs):
            async def noted():
                try:
                    return await attempt()
                except errors.LockNotAvailable:
                    refused_at_the_lock.add(asyncio.current_task())
                    raise

            return await retrying(noted, **kwargs)

        strategy.with_retries = with_retries

    async def place_order(pool, command):
        nonlocal finished
        try:
            return await strategy.place_order(pool, command)
        finally:
            finished += 1

    await strategy.start(pool)  # as the service does before its first order (redis_gate builds its gate then)
    seen = 0
    async with holder.transaction():
        await holder.execute(HOLD_SALE, [sale_id])
        await holder.execute(HOLD_SHARDS, [sale_id])
        crowd = asyncio.create_task(buy_concurrently(pool, SimpleNamespace(place_order=place_order), commands))
        try:
            if strategy.name == "pessimistic_nowait":  # it never queues: it fails, backs off and tries again
                await until(lambda: len(refused_at_the_lock) >= len(commands), "every buyer's NOWAIT to fail once")
            elif strategy.name == "batched":  # the buyers wait in its queue; its workers' batches on the lock
                seen = await until_lock_waiters(watcher, strategy.workers)
                # Every buyer is in a full batch at the lock or in the queue behind them: none got through alone.
                in_batches = strategy.workers * strategy.batch_size
                await until(
                    lambda: strategy.queued == len(commands) - in_batches,
                    f"{len(commands) - in_batches} buyers queued behind {strategy.workers} full batches",
                )
            else:
                counts = [0]

                async def every_buyer_waits_or_was_refused() -> bool:
                    counts[0] = await lock_waiters(watcher)
                    return counts[0] + finished >= len(commands)

                await until_async(every_buyer_waits_or_was_refused, f"{len(commands)} buyers waiting or refused")
                seen = counts[0]
        except BaseException:
            crowd.cancel()
            raise
    async with asyncio.timeout(HANG_S):
        return await crowd, seen


def check_contention(strategy, buyers: int, seen: int, *, everyone_queued: bool = True) -> None:
    """The race forced by `contended` happened, as each strategy shows it. `buyers`: in all the test's races;
    `seen`: lock waiters seen in all of them; `everyone_queued`: no buyer could be refused without the lock."""
    counters = strategy.counters
    if strategy.name == "pessimistic_nowait":
        assert counters["lock_not_available"] >= buyers, dict(counters)
        assert counters["retries"] >= buyers, dict(counters)
    elif strategy.name == "batched":
        assert seen >= strategy.workers
        assert counters["batches"] >= math.ceil(buyers / strategy.batch_size), dict(counters)
    elif strategy.name == "redis_gate":
        # Only the orders its script admitted reached the database, every one of them queued on the held sale, and
        # the database refused none of them.
        assert seen == counters["admitted"] == counters["written"] > 0, dict(counters)
        assert counters["refused"] == buyers - seen, dict(counters)
        assert counters["database_refusals"] == 0, dict(counters)
    else:
        assert seen == buyers if everyone_queued else seen > 0
        # Every write queued behind the holder found the row changed by it, and tried again.
        if strategy.name == "optimistic":
            assert counters["version_conflicts"] >= seen, dict(counters)
        elif strategy.name == "serializable":
            assert counters["serialization_failures"] >= seen, dict(counters)
    check_retry_accounting(strategy)


def check_retry_accounting(strategy):
    """Every failed attempt was either retried or given up on (`busy`)."""
    counters = strategy.counters
    for failures in ("lock_not_available", "version_conflicts", "serialization_failures"):
        if failures in counters:
            assert counters[failures] == counters["retries"] + counters["busy"], dict(counters)


class TestSafeStrategies:
    async def test_70_buyers_on_50_units_with_shared_users(self, strategy, conn, holder, pool, make_scenario):
        made = await make_scenario(users=60, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=60)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70)  # 10 users have two buyers racing
        result, seen = await contended(holder, conn, pool, strategy, commands, made.flash_sale_id)

        assert result.outcomes["created"] == 50
        assert result.outcomes["sold_out"] + result.outcomes["per_user_limit_exceeded"] == 20, result.outcomes
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.confirmed_quantity, audit.remaining, audit.limit_violations) == (50, 50, 0, 0)
        assert len({order.user_id for order in result.orders}) == 50
        check_contention(strategy, len(commands), seen)

    async def test_the_limit_binds_before_the_stock(self, strategy, conn, holder, pool, make_scenario):
        made = await make_scenario(users=40, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=40)
        # 64 buyers from 40 users: 24 users have two buyers racing for them, and the stock never runs out.
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=64)
        result, seen = await contended(holder, conn, pool, strategy, commands, made.flash_sale_id)

        assert (result.outcomes["created"], result.outcomes["per_user_limit_exceeded"]) == (40, 24)
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining, audit.limit_violations) == (40, 10, 0)
        check_contention(strategy, len(commands), seen)

    async def test_mixed_quantities_on_1000_units(self, strategy, conn, holder, pool, make_scenario):
        made = await make_scenario(users=30, inventory=1000, per_user_limit=4)
        user_ids = await users.list_ids(conn, limit=30)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=70, quantities=(1, 2, 3), seed=3)
        result, seen = await contended(holder, conn, pool, strategy, commands, made.flash_sale_id)

        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.orders == result.outcomes["created"] > 30
        assert audit.confirmed_quantity == sum(order.quantity for order in result.orders)
        assert set(result.outcomes) <= {"created", "per_user_limit_exceeded"}  # 1000 units never run out here
        check_contention(strategy, len(commands), seen)

    async def test_selling_out_in_mixed_quantities_refuses_nobody_wrongly(
        self, strategy, conn, holder, pool, make_scenario
    ):
        made = await make_scenario(users=80, inventory=300, per_user_limit=6)
        user_ids = await users.list_ids(conn, limit=80)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=280, quantities=(1, 2, 3), seed=5)
        results, seen = [], 0
        for start in range(0, len(commands), WAVE):
            wave = commands[start : start + WAVE]
            result, waiters = await contended(holder, conn, pool, strategy, wave, made.flash_sale_id)
            results += result.results
            seen += waiters

        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert audit.remaining < 3  # demand (about 560 units) exceeds the stock: it sold out
        held = Counter()
        for order in await orders.list_for_sale(conn, made.flash_sale_id):
            held[order.user_id] += order.quantity
        assert sum(held.values()) == 300 - audit.remaining
        assert max(held.values()) <= 6
        # Stock only falls and holdings only grow, so a refusal that was right when given is still right now.
        for command, result in zip(commands, results, strict=True):
            if result == "sold_out":
                assert command.quantity > audit.remaining
            elif result == "per_user_limit_exceeded":
                assert held[command.user_id] + command.quantity > 6
            else:
                assert not isinstance(result, str), result
        # Buyers at their limit or asking more than is left may be refused before they need the lock.
        check_contention(strategy, len(commands), seen, everyone_queued=False)


class TestUnsafe:
    async def test_a_deterministic_race_oversells_and_the_audit_reports_it(
        self, make_strategy, conn, pool, make_scenario, monkeypatch
    ):
        made = await make_scenario(users=60, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=60)
        # Every buyer reads before anyone writes: the pause the strategy makes between its read and its write
        # (`race_delay_s`) is a barrier that opens once all 64 have read, however slowly they come.
        barrier = asyncio.Barrier(64)

        async def until_everyone_has_read(_delay_s):
            async with asyncio.timeout(HANG_S):
                await barrier.wait()

        monkeypatch.setattr(unsafe_module, "asyncio", SimpleNamespace(sleep=until_everyone_has_read))
        unsafe = make_strategy("unsafe", race_delay_s=1.0)
        result = await buy_concurrently(pool, unsafe, crowd_commands(user_ids, made.flash_sale_id, buyers=64))

        assert result.outcomes["created"] == 64
        audit = await audit_sale(conn, made.flash_sale_id)
        assert not audit.ok
        assert audit.oversold == 14
        assert audit.limit_violations == 4  # the four users who had two buyers got two units each
        assert audit.inventory_mismatch == 64 - 1  # every writer wrote 50 - 1: the row says one unit sold
        problems = " ".join(audit.problems())
        assert "OVERSOLD by 14 units" in problems
        assert "4 users above the per-user limit" in problems

    async def test_without_a_race_it_sells_correctly(self, make_strategy, conn, make_scenario):
        """The unsafe strategy's logic is right; only concurrency breaks it (one buyer at a time here)."""
        from flashsale.domain import PlaceOrder, SoldOut

        made = await make_scenario(users=5, inventory=3)
        unsafe = make_strategy("unsafe")
        outcomes = []
        for user_id in await users.list_ids(conn, limit=5):
            try:
                await unsafe.create_order(conn, PlaceOrder(user_id=user_id, flash_sale_id=made.flash_sale_id))
                outcomes.append("created")
            except SoldOut:
                outcomes.append("sold_out")
        assert outcomes == ["created"] * 3 + ["sold_out"] * 2
        assert (await audit_sale(conn, made.flash_sale_id)).ok
