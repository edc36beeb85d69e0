"""Shared admission (`serve --admission redis`) on a real Valkey and a real PostgreSQL: the rate limit holds across
clients that stand for several processes, the order stream bounds the queue and hands the entries of a consumer
that stopped to another, its settlers settle every accepted order once, and while Redis does not answer each
process falls back to its share of the limits and comes back when it answers."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from flashsale.admission import OrderQueue, QueueFull, RateLimited, UserRateLimiter
from flashsale.admission.order_stream import OrderStream
from flashsale.admission.redis_breaker import RedisBreaker
from flashsale.admission.shared import SharedAdmission, database_namespace
from flashsale.admission.shared_rate_limit import SharedRateLimiter
from flashsale.domain import OrderStatus, PlaceOrder
from flashsale.kv import connection as kv_connection
from flashsale.repositories import users
from flashsale.services import settlement
from flashsale.services.audit import audit_sale
from flashsale.services.stream_settlement import StreamSettlers
from tests.waiting import until, until_async

SLOW_RATE = 0.01  # one order every 100 s after the burst: nothing refills while a test runs, however slow the machine
CLIENTS = 4  # clients on one limit, as so many server processes


@pytest.fixture
async def clients(redis_url):
    """Clients of their own, each with its own connections, as `CLIENTS` server processes would have."""
    made = [kv_connection.connect(redis_url) for _ in range(CLIENTS)]
    yield made
    for client in made:
        await client.aclose()


def namespace() -> str:
    """Keys no other test touches."""
    return uuid.uuid4().hex[:12]


async def admitted(limiter: SharedRateLimiter, user) -> bool:
    try:
        await limiter.admit(user)
    except RateLimited:
        return False
    return True


class TestSharedRateLimit:
    async def test_every_process_takes_from_one_budget(self, clients):
        """40 orders of one user at once through 4 clients (the processes): exactly the burst is admitted, where 4
        local limiters would admit 4 bursts."""
        where = namespace()
        limiters = [SharedRateLimiter(client, SLOW_RATE, burst=5, namespace=where) for client in clients]
        user = uuid.uuid4()
        answers = await asyncio.gather(*(admitted(limiters[n % CLIENTS], user) for n in range(40)))
        assert sum(answers) == 5
        locals_ = [UserRateLimiter(SLOW_RATE, burst=5) for _ in clients]
        local_answers = []
        for n in range(40):
            try:
                locals_[n % CLIENTS].admit(user)
                local_answers.append(True)
            except RateLimited:
                local_answers.append(False)
        assert sum(local_answers) == 5 * CLIENTS

    async def test_a_refusal_says_when_the_next_order_is_due_and_it_is_then(self, clients):
        limiter = SharedRateLimiter(clients[0], 20, burst=2, namespace=namespace())
        user = uuid.uuid4()
        assert [await admitted(limiter, user) for _ in range(2)] == [True, True]
        with pytest.raises(RateLimited) as refused:
            await limiter.admit(user)
        assert 0 < refused.value.retry_after_s <= 0.05  # one interval at most
        await asyncio.sleep(refused.value.retry_after_s)
        assert await admitted(limiter, user)

    async def test_users_are_limited_apart(self, clients):
        limiter = SharedRateLimiter(clients[0], SLOW_RATE, burst=1, namespace=namespace())
        first, second = uuid.uuid4(), uuid.uuid4()
        assert [await admitted(limiter, first), await admitted(limiter, first)] == [True, False]
        assert await admitted(limiter, second)

    async def test_an_idle_user_key_expires(self, clients, redis_url):
        """The key lives as long as it holds information: until the bucket is full again."""
        limiter = SharedRateLimiter(clients[0], 10, burst=3, namespace=namespace())
        user = uuid.uuid4()
        await limiter.admit(user)
        ttl_ms = await clients[0].pttl(limiter.key(user))
        assert 0 < ttl_ms <= 100  # one interval of 100 ms to refill the one order taken


class TestOrderStream:
    async def test_a_full_stream_takes_no_more(self, clients):
        stream = OrderStream(clients[0], namespace=namespace(), size=3)
        added = [await stream.add(uuid.uuid4()) for _ in range(5)]
        assert [entry is not None for entry in added] == [True, True, True, False, False]
        assert await stream.length() == 3
        assert not await stream.has_room()

    async def test_an_entry_left_unacknowledged_is_claimed_by_another_and_done_once(self, clients):
        where = namespace()
        first, second = (OrderStream(client, namespace=where, size=10) for client in clients[:2])
        await first.ensure_group()
        order_id = uuid.uuid4()
        await first.add(order_id)
        (read,) = await first.read("a", block_ms=100)
        assert read.order_id == order_id
        assert await second.read("b", block_ms=10) == []  # read once: it is a's until claimed
        assert await second.claim_idle("b", min_idle_ms=60_000) == []  # not idle long enough
        (claimed,) = await second.claim_idle("b", min_idle_ms=0)
        assert claimed == read
        assert await second.pending() == 1
        assert await second.done(claimed.entry_id)
        assert not await first.done(read.entry_id)  # a's late acknowledgement changes nothing
        assert (await first.length(), await first.pending()) == (0, 0)

    async def test_the_group_is_made_again_when_redis_lost_it(self, clients):
        stream = OrderStream(clients[0], namespace=namespace(), size=10)
        await stream.ensure_group()
        await clients[0].delete(stream.key)  # as a restart without persistence leaves it
        assert await stream.read("a", block_ms=10) == []
        order_id = uuid.uuid4()
        await stream.add(order_id)
        assert [entry.order_id for entry in await stream.read("a", block_ms=100)] == [order_id]


class TestStreamSettlers:
    async def test_every_accepted_order_is_settled_once_and_leaves_the_stream(
        self, clients, make_strategy, pool, conn, make_scenario
    ):
        """30 orders for 20 units through two processes' settlers (two clients, two workers each): 20 confirmed,
        10 failed sold out, the stream empty, the audit holds."""
        made = await make_scenario(users=40, inventory=20, per_user_limit=1)
        strategy = make_strategy("pessimistic")
        await strategy.start(pool)
        where = namespace()
        streams = [OrderStream(client, namespace=where, size=100) for client in clients[:2]]
        settlers = [
            StreamSettlers(stream, strategy, pool, workers=2, claim_after_s=30, prefix=f"p{n}")
            for n, stream in enumerate(streams)
        ]
        for settler in settlers:
            await settler.start()
        try:
            accepted = []
            for user_id in await users.list_ids(conn, limit=30):
                order = (await settlement.accept(pool, PlaceOrder(user_id, made.flash_sale_id))).order
                assert await streams[0].add(order.id) is not None
                accepted.append(order.id)

            async def all_settled() -> bool:
                return sum(s.settled for s in settlers) == 30

            await until_async(all_settled, "the settlers to settle 30 orders")
        finally:
            for settler in settlers:
                await settler.stop()
        assert all(s.settled for s in settlers), "both processes' settlers took orders"
        assert (await streams[0].length(), await streams[0].pending()) == (0, 0)
        audit = await audit_sale(conn, made.flash_sale_id, accepted=accepted)
        assert audit.ok, audit.problems()
        assert (audit.orders, audit.failed, audit.pending, audit.remaining) == (20, 10, 0, 0)
        cur = await conn.execute("SELECT count(*) FROM orders WHERE status = %s", [OrderStatus.CONFIRMED.value])
        assert (await cur.fetchone())[0] == 20


class TestRedisAway:
    async def test_each_process_falls_back_to_its_share_then_uses_redis_again(self, redis_url):
        """A Redis that does not answer (a closed port): orders are admitted by the local share of the limits at
        once, the breaker opens, and closes once its probe is answered."""
        answers = asyncio.Event()

        async def probe() -> None:
            if not answers.is_set():
                raise ConnectionError("nobody there")

        queue = OrderQueue(1)
        admission = SharedAdmission.connect(
            "redis://127.0.0.1:9",  # the discard port: nothing answers Redis there
            namespace=namespace(),
            user_rate=SLOW_RATE,
            user_burst=6,
            queue_size=4,
            processes=3,
            fallback_queue=queue,
            probe_interval_s=0.01,
        )
        admission.breaker = RedisBreaker(probe, probe_interval_s=0.01)  # a probe the test answers
        try:
            user = uuid.uuid4()
            results = []
            for _ in range(5):
                try:
                    await admission.admit(user)
                    results.append(True)
                except RateLimited:
                    results.append(False)
            assert results == [True, True, False, False, False]  # a burst of 6 / 3 processes
            await until(lambda: not admission.breaker.closed, "the breaker to open")
            await admission.check_room()  # the local share: one place, free
            assert not await admission.enqueue(uuid.uuid4())  # the caller settles it locally
            answers.set()
            await until(lambda: admission.breaker.closed, "the breaker to close")
            stats = admission.stats()
            assert (stats["trips"], stats["kept_local"]) == (1, 1)
            assert stats["fallbacks"] >= 5
        finally:
            await admission.aclose()

    async def test_a_full_local_share_refuses(self):
        queue = OrderQueue(1)
        await queue.start()
        admission = SharedAdmission.connect(
            "redis://127.0.0.1:9",
            namespace=namespace(),
            user_rate=0,
            queue_size=4,
            processes=4,
            fallback_queue=queue,
        )
        try:
            blocker, started = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                started.set()
                await blocker.wait()

            running = asyncio.ensure_future(queue.run(hold))  # the worker holds this one
            await started.wait()
            waiting = asyncio.ensure_future(queue.run(blocker.wait))  # the one place
            await until(lambda: queue.depth == 1, "the queue's place to be taken")
            with pytest.raises(QueueFull):
                await admission.check_room()
            blocker.set()
            await asyncio.gather(running, waiting)
        finally:
            await admission.aclose()
            await queue.stop()


def test_services_of_two_databases_keep_apart_in_one_redis():
    one = database_namespace("postgresql://u:secret@127.0.0.1:5432/one")
    assert one == database_namespace("postgresql://u:other@127.0.0.1:5432/one")  # the password is not its identity
    assert one != database_namespace("postgresql://u@127.0.0.1:5432/two")
    assert one != database_namespace("postgresql://u@127.0.0.1:5433/one")
