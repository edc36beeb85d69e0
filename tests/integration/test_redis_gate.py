"""The stock gate (`redis_gate`) on a real Valkey and a real PostgreSQL: a crowd on a small stock, one user racing
himself, keys replayed, refusals that never reach the database, Redis emptied mid-sale, the rebuild's guard and
fence, and failed writes. Every test ends with the audit comparing the gate with the database."""

import asyncio
import json
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest

from flashsale.domain import PerUserLimitExceeded, PlaceOrder, SaleNotActive, SoldOut, UserNotFound
from flashsale.kv import connection as kv_connection
from flashsale.load import LoadConfig, redis_benchmark, run_load_async
from flashsale.load.reference import run_reference
from flashsale.load.shapes import Closed
from flashsale.repositories import flash_sales, locks, orders, users
from flashsale.services import idempotency
from flashsale.services.audit import Audit, audit_sale
from flashsale.services.crowd import buy_concurrently, crowd_commands
from flashsale.stock_gate import GateKeys
from tests.integration.test_cli import flashsale
from tests.waiting import HANG_S, lock_waiters, until, until_lock_waiters


@pytest.fixture
def gate(make_strategy):
    return make_strategy("redis_gate")


@pytest.fixture
async def redis(redis_url):
    """A client of the test's own on the session's Valkey (to empty it, to look at the gate's keys)."""
    async with kv_connection.connect(redis_url, decode_responses=True) as client:
        yield client


async def audited(conn, gate, sale_id) -> Audit:
    """The sale's audit, with its gate compared to the database (the gate must be there), once it has passed."""
    view = await gate.gate.view(sale_id)
    assert view is not None, "the sale has no gate"
    audit = await audit_sale(conn, sale_id, gate=view)
    assert audit.ok, audit.problems()
    return audit


async def hold_buyer(holder, sale_id, user_id):
    """Take the (sale, user) lock every write of that user's orders takes first, in `holder`'s open transaction."""
    await locks.lock_buyer(holder, sale_id, user_id)


async def waiting_pid(conn) -> int:
    """The one session waiting on a lock."""
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    (row,) = await cur.fetchall()
    return row[0]


class TestCrowd:
    async def test_1000_buyers_on_50_units(self, gate, redis, conn, pool, make_scenario):
        made = await make_scenario(users=1000, inventory=50, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=1000)
        await gate.start(pool)
        result = await buy_concurrently(pool, gate, crowd_commands(user_ids, made.flash_sale_id, buyers=1000))

        assert result.outcomes == Counter({"created": 50, "sold_out": 950})
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.gate_stock, audit.limit_violations) == (50, 0, 0, 0)
        assert len({order.user_id for order in result.orders}) == 50
        # The gate alone decided: 950 refusals without the database, 50 admissions it wrote and never refused.
        counters = gate.counters
        assert (counters["admitted"], counters["written"], counters["refused"]) == (50, 50, 950), dict(counters)
        assert counters["database_refusals"] == counters["given_back"] == 0, dict(counters)
        # The race happened: the gate's pool opens a connection only when every open one is busy.
        assert (await redis.info("clients"))["connected_clients"] - 1 > 1

    async def test_one_user_racing_himself_gets_his_limit(self, gate, conn, pool, make_scenario):
        made = await make_scenario(users=2, inventory=50, per_user_limit=3)
        user, other = await users.list_ids(conn, limit=2)
        await gate.start(pool)
        commands = [PlaceOrder(user, made.flash_sale_id) for _ in range(40)]
        result = await buy_concurrently(pool, gate, [*commands, PlaceOrder(other, made.flash_sale_id)])

        assert result.outcomes == Counter({"created": 4, "per_user_limit_exceeded": 37})
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.limit_violations) == (4, 46, 0)
        assert (await gate.gate.view(made.flash_sale_id)).buyers == {str(user): 3, str(other): 1}
        assert gate.counters["database_refusals"] == 0, dict(gate.counters)


class TestRefusals:
    async def test_a_refusal_never_reaches_the_database(self, gate, make_strategy, conn, pool, make_scenario):
        """Sold out, over the limit, outside the window, with and without a key: the strategy takes no connection
        from its pool, and no backend of the pool runs anything (pg_stat_activity's `state_change` of each stays
        as it was; other sessions of the server do not matter)."""
        made = await make_scenario(users=2, inventory=2, per_user_limit=1)
        first, second = await users.list_ids(conn, limit=2)
        await gate.start(pool)
        await gate.place_order(pool, PlaceOrder(first, made.flash_sale_id))
        late = make_strategy("redis_gate", clock=lambda: made.ends_at)
        backends = await pool_backends(pool)
        before = await backend_activity(conn, backends)
        requested = pool.get_stats().get("requests_num", 0)

        sale = made.flash_sale_id
        for strategy, command, refusal in [
            (gate, PlaceOrder(second, sale, quantity=2), SoldOut),
            (gate, PlaceOrder(first, sale), PerUserLimitExceeded),
            (late, PlaceOrder(second, sale), SaleNotActive),
            (gate, PlaceOrder(second, sale, quantity=2, idempotency_key="refused-1"), SoldOut),
            (gate, PlaceOrder(first, sale, idempotency_key="refused-2"), PerUserLimitExceeded),
        ]:
            with pytest.raises(refusal):
                await idempotency.place_order(strategy, pool, command)
            with pytest.raises(refusal):
                await strategy.place_order(pool, command)

        assert pool.get_stats().get("requests_num", 0) == requested
        assert await backend_activity(conn, backends) == before
        assert gate.counters["refused"] + late.counters["refused"] == 10


async def pool_backends(pool) -> list[int]:
    """The server pid of every connection of the pool (read by libpq, without a statement)."""
    everyone = asyncio.Barrier(pool.max_size + 1)
    pids = []

    async def hold() -> None:
        async with pool.connection() as c:
            pids.append(c.info.backend_pid)
            await everyone.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(pool.max_size)]
    async with asyncio.timeout(HANG_S):
        await everyone.wait()
    await asyncio.gather(*tasks)
    assert len(set(pids)) == pool.max_size
    return pids


async def backend_activity(conn, pids) -> dict:
    cur = await conn.execute("SELECT pid, state_change, query FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
    return {pid: (changed, query) for pid, changed, query in await cur.fetchall()}


class TestIdempotencyKeys:
    async def test_a_replayed_key_returns_the_first_order_and_takes_one_unit(
        self, gate, redis, conn, pool, make_scenario
    ):
        made = await make_scenario(users=1, inventory=10, per_user_limit=5)
        (user,) = await users.list_ids(conn, limit=1)
        await gate.start(pool)
        command = PlaceOrder(user, made.flash_sale_id, quantity=2, idempotency_key="gate-replay")
        first = await idempotency.place_order(gate, pool, command)
        again = await idempotency.place_order(gate, pool, command)
        racing = await asyncio.gather(*(idempotency.place_order(gate, pool, command) for _ in range(30)))
        await redis.flushall()  # the keys come back with the gate, from the orders in the database
        after_restart = await idempotency.place_order(gate, pool, command)

        assert not first.replayed
        assert {(p.order, p.replayed) for p in [again, *racing, after_restart]} == {(first.order, True)}
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.gate_stock) == (1, 8, 8)
        counters = gate.counters
        assert (counters["admitted"], counters["written"], counters["replayed"]) == (1, 1, 32), dict(counters)


class TestRebuild:
    async def test_redis_emptied_mid_sale(self, gate, redis, conn, pool, make_scenario):
        """A crowd of 300 on 100 units; once 30 orders are written (the others admitted, being written), FLUSHALL and
        a second crowd of 300: the gate is rebuilt once from the database, the first crowd's writes the rebuild
        fenced off are decided again, and the sale sells exactly its 100 units, one per user."""
        made = await make_scenario(users=600, inventory=100, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=600)
        await gate.start(pool)
        commands = crowd_commands(user_ids, made.flash_sale_id, buyers=600)
        created, second = 0, []

        async def place_order(pool, command):
            nonlocal created
            order = await gate.place_order(pool, command)
            created += 1
            if created == 30:
                await redis.flushall()
                second.append(asyncio.create_task(buy_concurrently(pool, gate, commands[300:])))
            return order

        first = await buy_concurrently(pool, SimpleNamespace(place_order=place_order), commands[:300])
        async with asyncio.timeout(HANG_S):
            (after,) = await asyncio.gather(*second)

        assert first.outcomes + after.outcomes == Counter({"created": 100, "sold_out": 500})
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.gate_stock, audit.limit_violations) == (100, 0, 0, 0)
        assert gate.counters["rebuilds"] == 2, dict(gate.counters)  # at start, and once after the flush

    async def test_orders_wait_for_the_rebuild_and_one_order_rebuilds(
        self, gate, redis, conn, holder, pool, make_scenario
    ):
        """Redis emptied, and the rebuild's transaction held up (the test holds the sale row): the orders that come
        meanwhile are neither admitted nor refused, one of them holds the rebuild lock, the others wait for its
        gate; once the row is let go, the gate is installed whole and they are decided by it."""
        made = await make_scenario(users=20, inventory=5, per_user_limit=1)
        user_ids = await users.list_ids(conn, limit=20)
        await gate.start(pool)
        await redis.flushall()
        keys = GateKeys.of(made.flash_sale_id)
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [made.flash_sale_id])
            crowd = asyncio.create_task(
                buy_concurrently(pool, gate, crowd_commands(user_ids, made.flash_sale_id, buyers=20))
            )
            await until_lock_waiters(conn, 1)  # the rebuild, at the sale row
            await until(lambda: gate.counters["rebuild_waits"] >= 19, "the other orders to wait for the rebuild")
            assert not crowd.done()
            assert await redis.exists(keys.state) == 0
            assert await redis.exists(keys.rebuild_lock) == 1
            assert gate.counters["admitted"] == gate.counters["refused"] == 0
            assert await lock_waiters(conn) == 1  # one rebuild, not one per order
        async with asyncio.timeout(HANG_S):
            result = await crowd

        assert result.outcomes == Counter({"created": 5, "sold_out": 15})
        assert gate.counters["rebuilds"] == 2, dict(gate.counters)
        await audited(conn, gate, made.flash_sale_id)

    async def test_an_order_admitted_before_a_rebuild_is_fenced_off_and_decided_again(
        self, gate, redis, conn, holder, pool, make_scenario
    ):
        """A is admitted, and its write waits (the test holds A's buyer lock); Redis is emptied and B's order
        rebuilds the gate, which cannot count A (not written). A's write, let go, meets the new epoch: the database
        refuses it, and A is decided again by the new gate. Without the fence, A would be sold and the gate would
        never know."""
        made = await make_scenario(users=2, inventory=5, per_user_limit=1)
        a, b = await users.list_ids(conn, limit=2)
        await gate.start(pool)
        async with holder.transaction():
            await hold_buyer(holder, made.flash_sale_id, a)
            first = asyncio.create_task(gate.place_order(pool, PlaceOrder(a, made.flash_sale_id)))
            await until_lock_waiters(conn, 1)
            await redis.flushall()
            await gate.place_order(pool, PlaceOrder(b, made.flash_sale_id))
            assert gate.counters["rebuilds"] == 2
        async with asyncio.timeout(HANG_S):
            await first

        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.remaining, audit.gate_stock) == (2, 3, 3)
        counters = gate.counters
        assert (counters["admitted"], counters["database_refusals"], counters["written"]) == (3, 1, 2), dict(counters)

    async def test_a_window_moved_in_the_database_wins_over_the_gates(self, gate, conn, pool, make_scenario):
        """The sale is moved to open tomorrow after its gate was built (as `load --sale-opens-at` moves it): the
        gate still admits, the database refuses the write, and the gate, rebuilt, refuses as the database does."""
        made = await make_scenario(users=1, inventory=5)
        (user,) = await users.list_ids(conn, limit=1)
        await gate.start(pool)
        tomorrow = made.starts_at + timedelta(days=1)
        await flash_sales.set_window(conn, made.flash_sale_id, tomorrow, tomorrow + timedelta(hours=1))
        with pytest.raises(SaleNotActive):
            await gate.place_order(pool, PlaceOrder(user, made.flash_sale_id))
        counters = gate.counters
        assert (counters["database_refusals"], counters["invalidated"], counters["rebuilds"]) == (1, 1, 2)
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.gate_stock) == (0, 5)


class TestFailedWrites:
    async def test_a_write_the_database_fails_gives_its_unit_back(self, gate, conn, holder, pool, make_scenario):
        """The write is cancelled by the server while it waits (pg_cancel_backend: an error, so it surely rolled
        back): the unit, the buyer's count and the key go back to the gate, and the user may buy again."""
        made = await make_scenario(users=1, inventory=1, per_user_limit=1)
        (user,) = await users.list_ids(conn, limit=1)
        await gate.start(pool)
        command = PlaceOrder(user, made.flash_sale_id, idempotency_key="cancelled-write")
        async with holder.transaction():
            await hold_buyer(holder, made.flash_sale_id, user)
            placing = asyncio.create_task(gate.place_order(pool, command))
            await until_lock_waiters(conn, 1)
            await conn.execute("SELECT pg_cancel_backend(%s)", [await waiting_pid(conn)])
            with pytest.raises(psycopg.errors.QueryCanceled):
                await placing

        view = await gate.gate.view(made.flash_sale_id)
        assert (view.stock, view.buyers, gate.counters["given_back"]) == (1, {}, 1)
        await audited(conn, gate, made.flash_sale_id)
        order = await gate.place_order(pool, command)
        assert await orders.get_by_idempotency_key(conn, "cancelled-write") == order

    async def test_an_unknown_user_gives_the_unit_back(self, gate, conn, pool, make_scenario):
        made = await make_scenario(users=1, inventory=1, per_user_limit=1)
        await gate.start(pool)
        with pytest.raises(UserNotFound):
            await gate.place_order(pool, PlaceOrder(made.product_id, made.flash_sale_id))  # not a user's id
        assert gate.counters["given_back"] == 1
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.gate_stock) == (0, 1)

    async def test_a_write_of_unknown_outcome_drops_the_gate(self, gate, redis, conn, holder, pool, make_scenario):
        """The caller gives up while the write waits (a cancelled task: the connection is closed, and a write past
        its wait might have committed). Nothing is given back on a guess: the gate is dropped, and the next order
        rebuilds it from what the database holds."""
        made = await make_scenario(users=2, inventory=3, per_user_limit=1)
        a, b = await users.list_ids(conn, limit=2)
        await gate.start(pool)
        async with holder.transaction():
            await hold_buyer(holder, made.flash_sale_id, a)
            placing = asyncio.create_task(gate.place_order(pool, PlaceOrder(a, made.flash_sale_id)))
            await until_lock_waiters(conn, 1)
            placing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await placing
        assert await redis.exists(GateKeys.of(made.flash_sale_id).state) == 0
        assert (gate.counters["invalidated"], gate.counters["given_back"]) == (1, 0)

        await gate.place_order(pool, PlaceOrder(b, made.flash_sale_id))
        assert gate.counters["rebuilds"] == 2
        audit = await audited(conn, gate, made.flash_sale_id)
        assert (audit.orders, audit.gate_stock) == (1, 2)


class TestLoadRunner:
    @pytest.mark.parametrize("target", ["db", "http"])
    async def test_a_run_audits_the_gate_against_the_database(self, database_url, redis_url, target):
        """In-process, and through `flashsale serve --strategy redis_gate` (which finds the Redis the tests export)."""
        result = await run_load_async(
            LoadConfig(
                database_url=database_url,
                target=target,
                strategy="redis_gate",
                shape=Closed(vus=8, think_ms=0),
                duration_s=1.0,
                users=40,
                inventory=20,
                per_user_limit=1,
            )
        )
        audit = result.summary["audit"]
        assert result.ok, result.summary["meta"]["audit_problems"]
        assert (audit["orders"], audit["remaining"], audit["gate_stock"], audit["gate_disagreements"]) == (20, 0, 0, 0)
        outcomes = result.summary["outcomes"]
        assert outcomes["created"] == 20
        if target == "db":  # the service's counters are its own
            counters = result.summary["meta"]["strategy_counters"]
            assert counters["written"] == 20
            assert counters["refused"] == outcomes["sold_out"] + outcomes.get("per_user_limit_exceeded", 0)


class TestCommands:
    def test_demo_order_and_audit_through_the_gate(self, database_url, redis_url):
        """The commands find the Redis the tests exported (FLASHSALE_REDIS_URL), as a user's shell would."""
        demo = json.loads(
            flashsale(
                "demo", "--buyers", "60", "--users", "40", "--inventory", "25", "--pool-size", "8",
                "--strategy", "redis_gate", "--json",
            ).stdout
        )  # fmt: skip
        assert demo["outcomes"]["created"] == 25
        assert (demo["audit"]["ok"], demo["audit"]["gate_stock"]) == (True, 0)

        sale = json.loads(flashsale("db", "reset", "--users", "2", "--inventory", "3", "--json").stdout)
        with psycopg.connect(database_url) as c:
            user = str(c.execute("SELECT id FROM users ORDER BY number LIMIT 1").fetchone()[0])
        ordered = ["order", "--user", user, "--sale", sale["flash_sale_id"], "--strategy", "redis_gate", "--json"]
        assert json.loads(flashsale(*ordered).stdout)["order"]["status"] == "CONFIRMED"
        audited = json.loads(flashsale("audit", "--sale", sale["flash_sale_id"], "--gate", "--json").stdout)
        assert (audited["ok"], audited["remaining"], audited["gate_stock"]) == (True, 2, 2)


HAS_REDIS_BENCHMARK = redis_benchmark.program_path() is not None
NEEDS_REDIS_BENCHMARK = pytest.mark.skipif(not HAS_REDIS_BENCHMARK, reason="redis-benchmark (redis-tools) not here")


class TestReference:
    """The gate's reference line is redis-benchmark sending its decide script, as pgbench is the SQL designs'."""

    @NEEDS_REDIS_BENCHMARK
    def test_redis_benchmark_decides_and_the_gate_is_rebuilt_after(self, database_url, redis_url):
        load = LoadConfig(
            database_url=database_url, strategy="redis_gate", shape=Closed(vus=4), users=50, inventory=100
        )
        reference = run_reference(load, requests=2000)
        assert (reference.kind, reference.clients, reference.redis_benchmark.requests) == ("redis-benchmark", 4, 2000)
        assert reference.requests_per_s > 0
        assert reference.admitted == 50  # 50 users drawn, one unit each: the limit binds before the stock
        # Its admissions were never written: the gate is the database's again.
        assert reference.audit.ok, reference.audit.problems()
        assert (reference.audit.orders, reference.audit.gate_stock) == (0, 100)

    def test_where_redis_benchmark_is_missing_the_reference_says_so(
        self, database_url, redis_url, monkeypatch, tmp_path
    ):
        monkeypatch.setenv("PATH", str(tmp_path))
        load = LoadConfig(database_url=database_url, strategy="redis_gate", shape=Closed(vus=2), users=5, inventory=5)
        reference = run_reference(load, requests=10)
        assert "apt install redis-tools" in reference.missing
        assert (reference.requests_per_s, reference.orders_per_s, reference.admitted) == (None, None, None)
        assert reference.audit.ok, reference.audit.problems()

    @NEEDS_REDIS_BENCHMARK
    def test_the_bench_command(self, database_url, redis_url):
        ran = flashsale(
            "bench", "redis", "--vus", "2", "--requests", "500", "--users", "20", "--inventory", "5", "--json"
        )
        result = json.loads(ran.stdout)
        assert (result["strategy"], result["clients"], result["admitted"], result["missing"]) == (
            "redis_gate",
            2,
            5,
            None,
        )
        assert result["rps"] > 0
        assert result["audit"]["ok"]
        refused = flashsale("bench", "pgbench", "--strategy", "redis_gate", check=False)
        assert refused.returncode == 2
        assert "reference line is redis-benchmark (`flashsale bench redis`)" in refused.stderr
