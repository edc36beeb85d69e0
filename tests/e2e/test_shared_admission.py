"""`flashsale serve --admission redis` on a real Valkey: the per-user rate holds across `--workers 2` where local
admission gives each worker its own, and an asynchronous order whose settler's process was SIGKILLed with the
order's stream entry unacknowledged is settled once by another process, which takes the entry over.

The servers find the tests' Valkey through the `FLASHSALE_REDIS_URL` the `redis_url` fixture exports."""

from __future__ import annotations

import collections
import os
import signal
import uuid

import psycopg
import pytest

from flashsale import aio
from flashsale.admission.order_stream import OrderStream
from flashsale.admission.shared import database_namespace
from flashsale.http.settings import ServiceSettings
from flashsale.kv import connection as kv_connection
from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api
from tests.e2e.conftest import make_sale
from tests.e2e.test_faults import redis_killed
from tests.e2e.test_observability import scrape, value
from tests.e2e.test_serve_workers import audit, served_by
from tests.waiting import HANG_S, blocked_on_lock, wait_for

WORKERS = 2
BURST = 5
SLOW_RATE = 0.01  # after the burst, one order every 100 s: no order is due again while the test runs
BATCH = 8


def not_limited_per_worker(server: ServerProcess, api: Api, sale) -> tuple[collections.Counter, collections.Counter]:
    """One user's orders, each on its own connection, in batches until each worker has served more than the burst:
    (requests per worker, answers other than 429 per worker)."""
    user = sale.user_ids[0]
    served: collections.Counter = collections.Counter()
    passed: collections.Counter = collections.Counter()
    while len(served) < WORKERS or min(served.values()) <= BURST:
        assert sum(served.values()) < 40 * BATCH, f"the kernel kept sending one worker the connections: {served}"
        statuses = {}
        for _ in range(BATCH):
            rid = f"shared-{uuid.uuid4()}"
            statuses[rid] = api.order(user, sale.id, headers={"X-Request-ID": rid}).status
        for rid, pid in served_by(server, list(statuses)).items():
            served[pid] += 1
            passed[pid] += statuses[rid] != 429
    return served, passed


@pytest.mark.parametrize("admission", ["redis", "local"])
def test_one_users_rate_across_two_workers(database_url, redis_url, tmp_path, admission):
    """Shared: the burst once for the whole service. Local: the burst once per worker (each served more than it)."""
    sale = make_sale(database_url, users=1, inventory=1000, per_user_limit=1000)
    settings = ServiceSettings(
        strategy="pessimistic", pool_size=2, admission=admission, user_rate=SLOW_RATE, user_burst=BURST
    )
    with ServerProcess(settings=settings, workers=WORKERS, log_path=tmp_path / "serve.log") as server:
        api = Api(server.url)
        served, passed = not_limited_per_worker(server, api, sale)
        refused = api.order(sale.user_ids[0], sale.id)
    assert set(served) == set(passed) or admission == "redis"
    if admission == "redis":
        assert sum(passed.values()) == BURST
    else:
        assert passed == {pid: BURST for pid in served}
    assert refused.status == 429
    assert 90 <= int(refused.header("Retry-After")) <= 100
    result = audit(database_url, sale.id)
    assert result.ok, result.problems()
    assert result.orders == sum(passed.values())


def stream_of(database_url: str, client) -> OrderStream:
    return OrderStream(client, namespace=database_namespace(database_url), size=10)


def test_a_settler_killed_with_its_entry_unacknowledged_is_relieved_by_another(database_url, redis_url, tmp_path):
    """Server A's settler takes the order from the stream and waits on the sale's row, which the test holds; A is
    SIGKILLed. Server B takes A's entry over after --claim-after, settles the order once and acknowledges it."""
    sale = make_sale(database_url, users=5, inventory=5, per_user_limit=1)
    settings = ServiceSettings(
        strategy="pessimistic", pool_size=3, admission="redis", accept="async", queue_size=10, claim_after_s=60.0
    )

    async def in_redis(look):
        async with kv_connection.connect(redis_url) as client:
            return await look(stream_of(database_url, client), client)

    aio.run(in_redis(lambda stream, client: client.delete(stream.key)))  # what earlier tests left
    with psycopg.connect(database_url) as holder:
        # NO KEY UPDATE: the PENDING row's foreign key check (KEY SHARE) passes, the strategy's FOR UPDATE waits
        holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR NO KEY UPDATE", [sale.id])
        with ServerProcess(settings=settings, log_path=tmp_path / "a.log") as a:
            reply = Api(a.url).order(sale.user_ids[0], sale.id)
            assert reply.status == 202, reply.body
            order_id = reply.json["order_id"]
            wait_for(lambda: blocked_on_lock(database_url) >= 1, "A's settler to wait on the sale's row")
            os.kill(a.pid, signal.SIGKILL)
            a.process.wait(timeout=HANG_S)

        async def pending_of(stream, client):
            return await client.xpending(stream.key, stream.group)

        left = aio.run(in_redis(pending_of))
        assert left["pending"] == 1
        ((dead_consumer, _),) = ((c["name"], c["pending"]) for c in left["consumers"])
        holder.rollback()  # A's transactions ended with its connections; the row is free

    claimed = settings.replace(claim_after_s=1.0)
    with ServerProcess(settings=claimed, log_path=tmp_path / "b.log") as b:
        api = Api(b.url)
        wait_for(lambda: api.get(f"/orders/{order_id}/status").json["status"] != "pending", "B to settle it")
        assert api.get(f"/orders/{order_id}/status").json["status"] == "completed"

        async def stream_empty(stream, client):
            return await stream.length() == 0 and await stream.pending() == 0

        wait_for(lambda: aio.run(in_redis(stream_empty)), "B to acknowledge A's entry")

        async def consumers(stream, client):
            return {c["name"]: c["pending"] for c in await client.xinfo_consumers(stream.key, stream.group)}

        assert aio.run(in_redis(consumers))[dead_consumer] == 0  # taken over (XAUTOCLAIM), not left behind
        samples = scrape(api)
        assert value(samples, "flashsale_order_stream_claimed_total") == 1
        assert value(samples, "flashsale_order_stream_settled_total") == 1
        assert value(samples, "flashsale_admission_shared") == 1
    result = audit(database_url, sale.id)
    assert result.ok, result.problems()
    assert (result.orders, result.remaining, result.pending) == (1, 4, 0)


def test_redis_killed_each_process_falls_back_to_its_share_and_shares_again(database_url, scratch_redis, tmp_path):
    """Redis SIGKILLed under `serve --workers 2 --admission redis --accept async`: every order is still answered at
    once (202 or 429), within the processes' shares of the burst (2 each of 4); once Redis is back, empty, the
    processes share again and the stream settles; every accepted order is settled, none lost."""
    sale = make_sale(database_url, users=1, inventory=100, per_user_limit=100)
    user = sale.user_ids[0]
    settings = ServiceSettings(
        strategy="pessimistic", pool_size=3, admission="redis", accept="async", queue_size=10,
        user_rate=SLOW_RATE, user_burst=4,
    )  # fmt: skip
    with ServerProcess(settings=settings, workers=WORKERS, log_path=tmp_path / "serve.log") as server:
        api = Api(server.url, timeout=HANG_S)
        before = [api.order(user, sale.id) for _ in range(6)]
        assert [r.status for r in before] == [202] * 4 + [429] * 2  # the shared burst, whichever process answered
        with redis_killed(scratch_redis):
            during = [api.order(user, sale.id) for _ in range(3 * BATCH)]
        assert {r.status for r in during} <= {202, 429}
        admitted_during = sum(r.status == 202 for r in during)
        assert 2 <= admitted_during <= 4  # each process that got orders admitted its share of 2, no more
        wait_for(lambda: value(scrape(api), "flashsale_admission_shared") == WORKERS, "both processes to share again")
        after = api.order(user, sale.id)
        assert after.status == 202  # Redis came back empty: a full burst again
        accepted = [r.json["order_id"] for r in [*before, *during, after] if r.status == 202]

        def all_settled() -> bool:
            return all(api.get(f"/orders/{o}/status").json["status"] != "pending" for o in accepted)

        wait_for(all_settled, "every accepted order to be settled")
        samples = scrape(api)
        assert value(samples, "flashsale_redis_circuit_trips_total") >= 1
        assert value(samples, "flashsale_order_stream_kept_local_total") == admitted_during
    result = audit(database_url, sale.id)
    assert result.ok, result.problems()
    assert (result.orders, result.pending) == (len(accepted), 0)
