"""The order service through database and Redis faults, overload and shutdown: the real `flashsale serve` process,
and a real embedded server of its own (`scratch_server`, `scratch_redis`) stopped under it and started again on the
same socket; the servers the other tests use are never stopped.

The promise: every request gets a clear answer in bounded time (503 with `Retry-After` while the database is away
or the queue is full, never a hang), the service recovers by itself, and no acknowledged order is lost. "At once"
is shown by the order of events (answered while what it would wait for is still held) or against a configured
timeout far above what the answer took, never against a wall-clock figure a loaded machine could miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time

import aiohttp
import psutil
import psycopg
import pytest

from flashsale import aio, processes
from flashsale.config import DATABASE_URL_ENV
from flashsale.db import embedded
from flashsale.kv import embedded as kv_embedded
from flashsale.load import Closed, LoadConfig, run_load_async
from flashsale.load.faults import embedded_valkey_dir
from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api
from tests.e2e.conftest import make_sale
from tests.waiting import HANG_S, blocked_on_lock, wait_for

pytestmark = pytest.mark.slow

# Long enough that a request that waited for a pooled connection could not be mistaken for one refused at once.
POOL_TIMEOUT_S = 30.0


@contextlib.contextmanager
def database_down(pgdata):
    """The scratch server stopped (fast shutdown, by its pid) for the block, then started again on its socket."""
    info = embedded.running(pgdata)
    embedded.stop(pgdata)
    try:
        yield
    finally:
        embedded.resume(pgdata, info.socket_dir)


@contextlib.contextmanager
def redis_killed(url: str):
    """The scratch Valkey at `url` killed (SIGKILL, by its pid) for the block, then started again, empty, on its
    socket."""
    directory = aio.run(embedded_valkey_dir(url))
    info = kv_embedded.running(directory)
    processes.stop(info.pid, signal.SIGKILL, HANG_S)
    try:
        yield
    finally:
        kv_embedded.start(directory)


def timed(call):
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def metric(api: Api, name: str) -> float:
    for line in api.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


class TestDatabaseDown:
    def test_answers_503_at_once_then_recovers_without_a_restart(self, scratch_server, tmp_path):
        sale = make_sale(scratch_server.url, users=10, inventory=5, per_user_limit=2)
        with ServerProcess(
            pool_size=2,
            pool_timeout=POOL_TIMEOUT_S,
            log_path=tmp_path / "serve.log",
            env={DATABASE_URL_ENV: scratch_server.url},
        ) as server:
            api = Api(server.url, timeout=2 * POOL_TIMEOUT_S)
            assert api.order(sale.user_ids[0], sale.id).status == 201

            with database_down(scratch_server.pgdata):
                replies = [timed(lambda: api.order(sale.user_ids[1], sale.id)) for _ in range(20)]
                health = api.get("/health")
            assert {(r.status, r.json["error"], r.header("retry-after")) for r, _ in replies} == {
                (503, "unavailable", "1")
            }
            # Nobody waited for a pooled connection on a dead database: that wait would last the pool timeout.
            assert max(elapsed for _, elapsed in replies) < POOL_TIMEOUT_S / 2
            assert health.status == 503

            wait_for(lambda: api.get("/health").status == 200, "the service to find its database back")
            assert api.order(sale.user_ids[1], sale.id).status == 201
            assert server.process.poll() is None  # the same process all along
            assert metric(api, "flashsale_database_circuit_trips_total") == 1
            assert metric(api, "flashsale_database_circuit_refused_total") >= 19
            assert metric(api, "flashsale_database_circuit_open") == 0
            messages = [line["message"] for line in server.log_lines() if line["logger"] == "flashsale.db"]
            assert messages == [
                "database lost: refusing requests until it answers",
                "database back: accepting requests",
            ]


class TestLoadThroughARestart:
    async def test_503s_during_the_outage_recovery_and_every_acknowledged_order_present(self, scratch_server):
        result = await run_load_async(
            LoadConfig(
                target="http", database_url=scratch_server.url, shape=Closed(vus=6, think_ms=10), duration_s=6.0,
                users=60, inventory=100_000, per_user_limit=100_000, pool_timeout_s=POOL_TIMEOUT_S,
                faults=("db-restart@1s",), request_timeout_s=2 * POOL_TIMEOUT_S,
            )
        )  # fmt: skip
        summary, records = result.summary, result.records
        (fault,) = summary["meta"]["faults"]
        assert fault["error"] is None
        # While the database was away, the service answered 503 (and nothing else), without waiting out the pool.
        assert fault["failures"] > 0
        assert fault["statuses"] == {"503": fault["failures"]}
        assert set(fault["errors"]) == {"unavailable"}
        assert fault["failure_latency_ms"]["max"] < POOL_TIMEOUT_S * 1000 / 2
        assert set(records["status"]) == {201, 503}
        # It recovered by itself, after the database was back: the runner started the service once, and orders
        # went through again.
        assert 1.0 <= fault["injected_s"] < fault["down_s"] < fault["up_s"] <= fault["recovered_s"]
        assert fault["lag_s"] >= 0
        assert summary["meta"]["service_started"] is True
        assert (records[records["start_s"] > fault["recovered_s"]]["status"] == 201).sum() > 0
        # The audit: nothing oversold, and every 201 the clients saw is an order in the database.
        audit = summary["audit"]
        assert result.ok, summary["meta"]["audit_problems"]
        assert audit["acknowledged"] == (records["status"] == 201).sum() > 0
        assert audit["acknowledged_missing"] == 0
        assert audit["orders"] - audit["acknowledged"] == audit["unacknowledged"] >= 0


class TestRedisDown:
    def test_the_gate_answers_503_while_redis_is_away_then_rebuilds_without_a_restart(
        self, database_url, scratch_redis, tmp_path
    ):
        """Redis killed under `serve --strategy redis_gate`: every order is answered 503 `unavailable` while it is
        still away (none waits for it to come back), the outage is logged once, not once an order; once it is back,
        empty, the next order rebuilds the gate from the database and the sale's rules hold across the outage."""
        sale = make_sale(database_url, users=10, inventory=5, per_user_limit=2)
        with ServerProcess(strategy="redis_gate", pool_size=2, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url, timeout=HANG_S)
            buyer = sale.user_ids[1]
            assert api.order(buyer, sale.id).status == 201

            with redis_killed(scratch_redis):
                replies = [api.order(buyer, sale.id) for _ in range(20)]
            assert {(r.status, r.json["error"], r.header("retry-after")) for r in replies} == {
                (503, "unavailable", "1")
            }

            assert api.order(buyer, sale.id).status == 201  # the gate rebuilt, with the buyer's first unit
            refused = api.order(buyer, sale.id)
            assert (refused.status, refused.json["error"]) == (409, "per_user_limit_exceeded")
            assert server.process.poll() is None  # the same process all along
            events = [line for line in api.get("/metrics").body.decode().splitlines() if 'event="' in line]
            assert 'flashsale_strategy_events_total{event="redis_unavailable",strategy="redis_gate"} 20.0' in events
            assert 'flashsale_strategy_events_total{event="rebuilds",strategy="redis_gate"} 2.0' in events
            lines = server.log_lines()
            messages = [line["message"] for line in lines if line["logger"] == "flashsale.strategies.redis_gate"]
            assert messages == ["Redis lost: refusing orders until it answers", "Redis back: deciding orders"]
            assert "answered 503" not in [line["message"] for line in lines]


class TestLoadThroughARedisRestart:
    async def test_503s_while_redis_restarts_and_the_gate_agrees_with_the_database(self, database_url, scratch_redis):
        result = await run_load_async(
            LoadConfig(
                target="http", database_url=database_url, strategy="redis_gate", shape=Closed(vus=6, think_ms=5),
                duration_s=4.0, users=60, inventory=100_000, per_user_limit=100_000, faults=("redis-restart@1s",),
                request_timeout_s=HANG_S,
            )
        )  # fmt: skip
        summary, records = result.summary, result.records
        (fault,) = summary["meta"]["faults"]
        assert (fault["server"], fault["error"]) == ("Redis", None)
        # While Redis was away the service answered 503 `unavailable`, and nothing else; every request was answered.
        assert fault["failures"] > 0
        assert fault["statuses"] == {"503": fault["failures"]}
        assert fault["errors"] == {"unavailable": fault["failures"]}
        assert set(records["status"]) == {201, 503}
        # It recovered by itself once Redis was back, empty: the gate was rebuilt from the database.
        assert 1.0 <= fault["injected_s"] < fault["down_s"] < fault["up_s"] <= fault["recovered_s"]
        assert (records[records["start_s"] > fault["recovered_s"]]["status"] == 201).sum() > 0
        # The audit: nothing oversold, every 201 an order, and the rebuilt gate holds what the database holds.
        audit = summary["audit"]
        assert result.ok, summary["meta"]["audit_problems"]
        assert audit["acknowledged"] == (records["status"] == 201).sum() == audit["orders"]
        assert (audit["gate_stock"], audit["gate_disagreements"]) == (audit["remaining"], 0)


class TestOverload:
    def test_a_full_queue_is_refused_at_once(self, database_url, sale, tmp_path):
        """One connection, held by an order waiting on a row lock the test holds; one more order may wait."""
        with ServerProcess(
            pool_size=1, pool_timeout=POOL_TIMEOUT_S, max_waiting=1, log_path=tmp_path / "serve.log"
        ) as server:
            api = Api(server.url, timeout=2 * POOL_TIMEOUT_S)
            replies: dict[str, object] = {}

            def order(name: str, user: int) -> threading.Thread:
                worker = threading.Thread(
                    target=lambda: replies.update({name: api.order(sale.user_ids[user], sale.id)})
                )
                worker.start()
                return worker

            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                first = order("first", 0)
                wait_for(lambda: blocked_on_lock(database_url) == 1, "the first order to queue on the row")
                second = order("second", 1)
                wait_for(lambda: metric(api, "flashsale_pool_requests_waiting") == 1, "the second to wait")

                refused = api.order(sale.user_ids[2], sale.id)
                # Refused while the order it would have queued behind still waits (for a connection held by the
                # first, which waits on the row held here): it did not wait its turn.
                assert second.is_alive()
                assert "second" not in replies
                holder.commit()
            first.join(HANG_S)
            second.join(HANG_S)

            assert (refused.status, refused.json["error"], refused.header("retry-after")) == (503, "overloaded", "1")
            assert (replies["first"].status, replies["second"].status) == (201, 201)

    def test_memory_stays_flat_under_a_long_overload(self, database_url, sale, tmp_path):
        """The first order takes the only connection and blocks on a row lock the test holds: the queue fills,
        everything else is refused, and the service's memory must not grow with the refusals. Measured by the
        count of refusals, not by time, so a slow machine measures the same overload."""
        clients, warm, measured = 64, 1000, 2000  # refusals before the first sample, then between the two
        allowed = 2 * 2**10  # bytes a refusal may leave behind, on average: less than any request's own objects
        with ServerProcess(
            pool_size=1, pool_timeout=0.3, max_waiting=8, access_log=False, log_path=tmp_path / "serve.log"
        ) as server:
            service = psutil.Process(server.pid)
            body = {"user_id": str(sale.user_ids[0]), "flash_sale_id": str(sale.id), "quantity": 1}
            statuses: dict[int, int] = {}
            rss: dict[str, int] = {}

            async def overload() -> int:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HANG_S)) as session:

                    async def post() -> int:
                        async with session.post(f"{server.url}/api/orders", json=body) as reply:
                            await reply.read()
                            return reply.status

                    async def client() -> None:
                        while statuses.get(503, 0) < warm + measured:
                            status = await post()
                            statuses[status] = statuses.get(status, 0) + 1
                            if status == 503 and statuses[503] == warm:
                                rss["warm"] = service.memory_info().rss
                        rss.setdefault("end", service.memory_info().rss)

                    holder = await psycopg.AsyncConnection.connect(database_url)
                    async with holder:
                        await holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                        blocked = asyncio.create_task(post())
                        await asyncio.to_thread(
                            wait_for, lambda: blocked_on_lock(database_url) == 1, "the first order to queue"
                        )
                        # Every client's every request is answered while the row is still held: nobody hangs.
                        async with asyncio.timeout(HANG_S * 5):
                            await asyncio.gather(*(client() for _ in range(clients)))
                        await holder.rollback()  # the blocked order goes through
                        return await blocked

            assert asyncio.run(overload()) == 201

        assert set(statuses) == {503}
        growth = rss["end"] - rss["warm"]
        assert growth < allowed * measured, f"the service grew by {growth / 2**20:.1f} MB over {measured} refusals"


class TestGracefulShutdown:
    def test_sigterm_lets_the_order_in_flight_finish_and_exits_0(self, database_url, sale, tmp_path):
        server = ServerProcess(pool_size=1, log_path=tmp_path / "serve.log").start()
        try:
            api = Api(server.url)
            replies: dict[str, object] = {}
            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                worker = threading.Thread(target=lambda: replies.update(reply=api.order(sale.user_ids[0], sale.id)))
                worker.start()
                wait_for(lambda: blocked_on_lock(database_url) == 1, "the order to queue on the row")

                server.process.send_signal(signal.SIGTERM)
                wait_for(lambda: not _accepts(api), "the service to stop accepting connections")
                assert server.process.poll() is None  # but still draining the order in flight
                holder.commit()
            worker.join(HANG_S)
            assert replies["reply"].status == 201
            assert server.process.wait(HANG_S) == 0
        finally:
            server.stop()
        messages = [line["message"] for line in server.log_lines()]
        assert "Application shutdown complete." in messages


def _accepts(api: Api) -> bool:
    try:
        api.get("/openapi.json")
    except OSError:
        return False
    return True
