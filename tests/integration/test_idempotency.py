"""Idempotency keys on the real database, through every strategy: retries racing on real connections place one
order, a key reused for another order is refused, and a refused order keeps no key."""

import asyncio
import json

import psycopg
import pytest

from flashsale import strategies
from flashsale.domain import IdempotencyKeyReused, IdempotencyKeyTaken, PlaceOrder, SoldOut
from flashsale.load import Closed, LoadConfig, Open, run_load_async
from flashsale.repositories import orders, users
from flashsale.services import idempotency
from flashsale.services.audit import audit_sale
from tests.integration.test_cli import flashsale
from tests.waiting import HANG_S

EVERY = strategies.names()
RETRIES = 24  # copies of one request racing, each on its own connection


@pytest.fixture(params=EVERY)
def strategy(request, make_strategy):
    return make_strategy(request.param, patient=True)


async def race(pool, strategy, command: PlaceOrder, copies: int) -> list:
    """`copies` identical requests released together; what each was answered (a Placement, or the error)."""
    gate = asyncio.Event()

    async def client():
        await gate.wait()
        try:
            return await idempotency.place_order(strategy, pool, command)
        except Exception as exc:
            return exc

    tasks = [asyncio.create_task(client()) for _ in range(copies)]
    await asyncio.sleep(0)
    gate.set()
    return await asyncio.gather(*tasks)


class AfterEveryLookup:
    """The strategy, entered by each copy only once every copy has looked for the key's order and found none (a
    barrier): then every copy places, and the losers must meet the key (or the sale) in the database. `refused`
    says why each copy that raised was refused."""

    def __init__(self, strategy, copies: int) -> None:
        self.strategy, self.name = strategy, strategy.name
        self.barrier = asyncio.Barrier(copies)
        self.refused: list[str] = []

    async def place_order(self, pool, command):
        async with asyncio.timeout(HANG_S):
            await self.barrier.wait()
        try:
            return await self.strategy.place_order(pool, command)
        except psycopg.errors.UniqueViolation as exc:
            self.refused.append(f"unique:{exc.diag.constraint_name}")
            raise
        except IdempotencyKeyTaken:
            self.refused.append("key_taken")
            raise
        except Exception as exc:
            self.refused.append(getattr(exc, "code", type(exc).__name__))
            raise


# How a copy that lost the race to its key's INSERT is refused: the unique constraint, or `batched` seeing the key
# in its batch.
KEY_CONFLICTS = {f"unique:{orders.IDEMPOTENCY_KEY_CONSTRAINT}", "key_taken"}


async def key_rows(conn, key: str) -> list:
    cur = await conn.execute("SELECT id, quantity FROM orders WHERE idempotency_key = %s", [key])
    return await cur.fetchall()


class TestConcurrentRetries:
    async def test_one_key_places_one_order(self, strategy, conn, pool, make_scenario):
        """The per-user limit is high, so nothing but the key stops the copies from each placing an order; every
        copy looks for the key's order before any places one (a barrier), so the losers reach the key's unique
        constraint, and must each be answered with the winner's order."""
        made = await make_scenario(users=3, inventory=100, per_user_limit=50)
        (user, *_) = await users.list_ids(conn, limit=1)
        command = PlaceOrder(user, made.flash_sale_id, quantity=2, idempotency_key=f"race-{strategy.name}")
        racing = AfterEveryLookup(strategy, RETRIES)
        answers = await race(pool, racing, command, RETRIES)

        errors = [a for a in answers if isinstance(a, Exception)]
        assert not errors, errors
        assert len({a.order.id for a in answers}) == 1  # every copy was answered with the same order
        assert sorted(a.replayed for a in answers) == [False] + [True] * (RETRIES - 1)
        assert len(racing.refused) == RETRIES - 1  # the race happened: every loser was refused by the database
        assert set(racing.refused) <= KEY_CONFLICTS, racing.refused
        assert [row[1] for row in await key_rows(conn, command.idempotency_key)] == [2]
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 98)  # the losers' stock came back with their rollback

    async def test_a_key_reused_for_another_order_is_refused(self, strategy, conn, pool, make_scenario):
        made = await make_scenario(users=3, inventory=100, per_user_limit=50)
        first, second, *_ = await users.list_ids(conn, limit=2)
        key = f"reused-{strategy.name}"
        placed = await idempotency.place_order(strategy, pool, PlaceOrder(first, made.flash_sale_id, 1, key))
        assert not placed.replayed

        for other in (PlaceOrder(first, made.flash_sale_id, 2, key), PlaceOrder(second, made.flash_sale_id, 1, key)):
            with pytest.raises(IdempotencyKeyReused, match="already used for an order with other parameters"):
                await idempotency.place_order(strategy, pool, other)
        again = await idempotency.place_order(strategy, pool, PlaceOrder(first, made.flash_sale_id, 1, key))
        assert (again.order.id, again.replayed) == (placed.order.id, True)
        assert len(await key_rows(conn, key)) == 1
        assert (await audit_sale(conn, made.flash_sale_id)).remaining == 99


class TestTheLastUnit:
    async def test_copies_that_lose_the_race_and_meet_sold_out_are_answered_with_the_order(
        self, strategy, conn, pool, make_scenario
    ):
        """One unit: every copy looks for the key's order before any of them places one (a barrier), so the losers
        go on to the strategy and meet the sale sold out by their own winner; each must still get that order."""
        made = await make_scenario(users=3, inventory=1, per_user_limit=50)
        (user, *_) = await users.list_ids(conn, limit=1)
        command = PlaceOrder(user, made.flash_sale_id, quantity=1, idempotency_key=f"last-{strategy.name}")
        racing = AfterEveryLookup(strategy, RETRIES)
        answers = await race(pool, racing, command, RETRIES)
        refused = racing.refused
        assert not [a for a in answers if isinstance(a, Exception)]
        assert len({a.order.id for a in answers}) == 1
        assert sorted(a.replayed for a in answers) == [False] + [True] * (RETRIES - 1)
        assert len(refused) == RETRIES - 1  # every loser was refused by the strategy, then answered
        if strategy.name not in ("batched", "redis_gate", "unsafe"):
            # batched sees the key in its batch, redis_gate's script the key before the stock; unsafe never waits
            assert "sold_out" in refused, refused
        elif strategy.name == "redis_gate":
            assert set(refused) == {"key_taken"}, refused
        audit = await audit_sale(conn, made.flash_sale_id)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.remaining) == (1, 0)


class TestKeysOfRefusedOrders:
    async def test_a_refused_order_keeps_no_key_and_may_be_sent_again(self, conn, pool, make_scenario, make_strategy):
        strategy = make_strategy("pessimistic")
        made = await make_scenario(users=2, inventory=0, per_user_limit=1)
        (user,) = await users.list_ids(conn, limit=1)
        command = PlaceOrder(user, made.flash_sale_id, 1, "refused-then-placed")
        with pytest.raises(SoldOut):
            await idempotency.place_order(strategy, pool, command)
        assert await key_rows(conn, command.idempotency_key) == []

        await conn.execute(
            "UPDATE flash_sales SET total_inventory = 1, remaining_inventory = 1 WHERE id = %s", [made.flash_sale_id]
        )
        placed = await idempotency.place_order(strategy, pool, command)
        assert not placed.replayed
        assert len(await key_rows(conn, command.idempotency_key)) == 1


class TestOnOneConnection:
    async def test_the_pinned_path_replays_too(self, conn, make_scenario, make_strategy):
        strategy = make_strategy("atomic")
        made = await make_scenario(users=1, inventory=5, per_user_limit=5)
        (user,) = await users.list_ids(conn, limit=1)
        command = PlaceOrder(user, made.flash_sale_id, 1, "pinned")
        first = await idempotency.create_order(strategy, conn, command)
        second = await idempotency.create_order(strategy, conn, command)
        assert (second.order.id, first.replayed, second.replayed) == (first.order.id, False, True)

    async def test_without_a_key_nothing_changes(self, conn, make_scenario, make_strategy):
        strategy = make_strategy("pessimistic")
        made = await make_scenario(users=1, inventory=5, per_user_limit=5)
        (user,) = await users.list_ids(conn, limit=1)
        placed = [await idempotency.create_order(strategy, conn, PlaceOrder(user, made.flash_sale_id)) for _ in "ab"]
        assert len({p.order.id for p in placed}) == 2
        assert not any(p.replayed for p in placed)


class TestSchema:
    async def test_the_database_itself_refuses_a_second_order_for_a_key(self, conn, make_scenario):
        made = await make_scenario(users=1, inventory=5, per_user_limit=5)
        (user,) = await users.list_ids(conn, limit=1)
        row = {
            "user_id": user,
            "flash_sale_id": made.flash_sale_id,
            "quantity": 1,
            "status": orders.OrderStatus.CONFIRMED,
        }
        await orders.insert(conn, **row, idempotency_key="only-once")
        with pytest.raises(psycopg.errors.UniqueViolation) as broken:
            await orders.insert(conn, **row, idempotency_key="only-once")
        assert broken.value.diag.constraint_name == orders.IDEMPOTENCY_KEY_CONSTRAINT
        with pytest.raises(psycopg.errors.CheckViolation):
            await orders.insert(conn, **row, idempotency_key="no spaces")


class TestLoadRunner:
    @pytest.mark.parametrize("rate", [None, 400.0], ids=["closed-pinned", "open-pool"])
    async def test_db_target_retries_are_audited_one_order_per_key(self, database_url, rate):
        result = await run_load_async(
            LoadConfig(
                database_url=database_url, strategy="batched" if rate else "pessimistic",
                shape=Open(rate=rate) if rate else Closed(vus=4, think_ms=2), duration_s=1.0, users=40, inventory=60,
                per_user_limit=2, retry_rate=0.2, retry_pool=50,
            )
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["meta"]["pinned_connections"] is (rate is None)
        idem = summary["meta"]["idempotency"]
        assert idem["retries"] > 0
        assert summary["outcomes"].get("replayed", 0) > 0
        assert idem["answers_disagreeing"] == 0
        audit = summary["audit"]
        assert (audit["keys"], audit["key_violations"]) == (audit["orders"], 0)

    def test_the_command_takes_retry_options(self, database_url):
        proc = flashsale(
            "load", "--duration", "1s", "--vus", "2", "--think-ms", "5", "--retry-rate", "0.2", "--retry-pool", "5",
            "--users", "10", "--inventory", "100", "--per-user-limit", "100", "--quiet", "--json",
        )  # fmt: skip
        summary = json.loads(proc.stdout)
        assert summary["meta"]["idempotency"]["retry_pool"] == 5
        assert summary["audit"]["key_violations"] == 0
        assert summary["audit"]["keys"] == summary["audit"]["orders"] > 0

    @pytest.mark.parametrize("args", [["--retry-rate", "1.5"], ["--retry-rate", "-0.1"], ["--retry-pool", "0"]])
    def test_bad_retry_options_are_usage_errors(self, database_url, args):
        proc = flashsale("load", "--duration", "1s", *args, "--quiet", check=False)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1


class TestOrderCommand:
    def test_the_same_key_twice_is_one_order(self, database_url):
        sale = json.loads(
            flashsale("db", "reset", "--users", "1", "--inventory", "5", "--per-user-limit", "5", "--json").stdout
        )
        with psycopg.connect(database_url) as c:
            user = str(c.execute("SELECT id FROM users").fetchone()[0])
        args = ("order", "--user", user, "--sale", sale["flash_sale_id"], "--idempotency-key", "by-hand-1", "--json")
        first, again = (json.loads(flashsale(*args).stdout) for _ in range(2))
        assert (first["replayed"], again["replayed"]) == (False, True)
        assert first["order"]["id"] == again["order"]["id"]
        assert "placed earlier with this key" in flashsale(*args[:-1]).stdout
