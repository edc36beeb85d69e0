"""The order service through database faults, overload and shutdown: the real `flashsale serve` process, and the
real embedded test server stopped under it and started again on the same socket (left running for the tests
after these).

The promise: every request gets a clear answer in bounded time (503 with `Retry-After` while the database is away
or the queue is full, never a hang), the service recovers by itself, and no acknowledged order is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import threading
import time

import aiohttp
import psutil
import psycopg
import pytest

from flashsale.db import embedded
from flashsale.http.server_process import ServerProcess
from flashsale.load import LoadConfig, run_load_async
from flashsale.load.faults import FaultUnsupported, embedded_pgdata
from tests.e2e.api import Api
from tests.e2e.test_unavailable import blocked_on_lock, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def pgdata(database_url):
    """The test server's data directory; skipped when the tests run on a server given by URL."""
    try:
        return embedded_pgdata(database_url)
    except FaultUnsupported:
        pytest.skip("database faults need the embedded test server")


@contextlib.contextmanager
def database_down(pgdata):
    """The test server stopped (fast shutdown) for the block, then started again on its socket."""
    info = embedded.running(pgdata)
    embedded.stop(pgdata)
    try:
        yield
    finally:
        embedded.resume(pgdata, info.socket_dir)


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
    def test_answers_503_at_once_then_recovers_without_a_restart(self, database_url, pgdata, sale, tmp_path):
        with ServerProcess(pool_size=2, pool_timeout=3, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url, timeout=10)
            assert api.order(sale.user_ids[0], sale.id).status == 201

            with database_down(pgdata):
                replies = [timed(lambda: api.order(sale.user_ids[1], sale.id)) for _ in range(20)]
                health = api.get("/health")
            assert {(r.status, r.json["error"], r.header("retry-after")) for r, _ in replies} == {
                (503, "unavailable", "1")
            }
            latencies = [elapsed for _, elapsed in replies]
            assert max(latencies) < 1.5  # far below the 3 s pool timeout: nobody waits on a dead database
            assert statistics.median(latencies) < 0.1
            assert health.status == 503

            assert wait_for(lambda: api.get("/health").status == 200, timeout=10)
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
    async def test_503s_during_the_outage_recovery_and_every_acknowledged_order_present(self, database_url, pgdata):
        result = await run_load_async(
            LoadConfig(
                target="http", database_url=database_url, vus=6, think_ms=10, duration_s=4.0, users=60,
                inventory=100_000, per_user_limit=100_000, pool_timeout_s=3.0, faults=("db-restart@1.5s",),
            )
        )  # fmt: skip
        summary, records = result.summary, result.records
        (fault,) = summary["meta"]["faults"]
        assert fault["error"] is None
        # While the database was away, the service answered 503 (and nothing else), quickly.
        assert fault["failures"] > 0
        assert fault["statuses"] == {"503": fault["failures"]}
        assert set(fault["errors"]) == {"unavailable"}
        assert fault["failure_latency_ms"]["p50"] < 100
        assert fault["failure_latency_ms"]["max"] < 3000  # never more than the pool timeout
        assert set(records["status"]) == {201, 503}
        # It recovered by itself: the runner started the service once, and orders went through again.
        assert fault["recovery_s"] < 2.5
        assert fault["lag_s"] < 1.5
        assert summary["meta"]["service_started"] is True
        assert (records[records["start_s"] > fault["recovered_s"]]["status"] == 201).sum() > 10
        # The audit: nothing oversold, and every 201 the clients saw is an order in the database.
        audit = summary["audit"]
        assert result.ok, summary["meta"]["audit_problems"]
        assert audit["acknowledged"] == (records["status"] == 201).sum() > 0
        assert audit["acknowledged_missing"] == 0
        assert audit["orders"] - audit["acknowledged"] == audit["unacknowledged"] >= 0


class TestOverload:
    def test_a_full_queue_is_refused_at_once(self, database_url, sale, tmp_path):
        """One connection, held by an order waiting on a row lock the test holds; one more order may wait."""
        with ServerProcess(pool_size=1, pool_timeout=5, max_waiting=1, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
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
                assert wait_for(lambda: blocked_on_lock(database_url) == 1)
                second = order("second", 1)
                assert wait_for(lambda: metric(api, "flashsale_pool_requests_waiting") == 1)

                refused, elapsed = timed(lambda: api.order(sale.user_ids[2], sale.id))
                holder.commit()
            first.join(10)
            second.join(10)

            assert (refused.status, refused.json["error"], refused.header("retry-after")) == (503, "overloaded", "1")
            assert elapsed < 0.5
            assert (replies["first"].status, replies["second"].status) == (201, 201)

    def test_memory_stays_flat_under_a_long_overload(self, database_url, sale, tmp_path):
        """The first order takes the only connection and blocks on a row lock the test holds for 4 s: the queue
        fills, everything else is refused, and the service's memory must not grow with the refusals."""
        duration_s, clients = 4.0, 64
        with ServerProcess(
            pool_size=1, pool_timeout=0.3, max_waiting=8, access_log=False, log_path=tmp_path / "serve.log"
        ) as server:
            service = psutil.Process(server.pid)
            body = {"user_id": str(sale.user_ids[0]), "flash_sale_id": str(sale.id), "quantity": 1}
            rss: list[tuple[float, int]] = []
            statuses: dict[int, int] = {}
            slowest_refusal = 0.0

            async def overload() -> None:
                nonlocal slowest_refusal
                loop = asyncio.get_running_loop()
                stop_at = loop.time() + duration_s

                async def client(session: aiohttp.ClientSession) -> None:
                    nonlocal slowest_refusal
                    while loop.time() < stop_at:
                        started = loop.time()
                        async with session.post(f"{server.url}/api/orders", json=body) as reply:
                            await reply.read()
                        statuses[reply.status] = statuses.get(reply.status, 0) + 1
                        if reply.status == 503:
                            slowest_refusal = max(slowest_refusal, loop.time() - started)

                async def hold_the_row_then_sample() -> None:
                    holder = await psycopg.AsyncConnection.connect(database_url)
                    async with holder:
                        await holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                        while loop.time() < stop_at:
                            rss.append((duration_s - (stop_at - loop.time()), service.memory_info().rss))
                            await asyncio.sleep(0.1)
                        await holder.rollback()  # the blocked order goes through

                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                    await asyncio.gather(hold_the_row_then_sample(), *(client(session) for _ in range(clients)))

            asyncio.run(overload())

        assert statuses.get(503, 0) > 500
        assert statuses.get(201, 0) <= 1  # the one order that held the connection, once the row was free
        assert set(statuses) <= {201, 503}
        assert slowest_refusal < 2.0  # the pool timeout plus the machine's noise: no request hangs
        settled = [value for t, value in rss if t >= 1.0]
        growth_mb = (max(settled) - settled[0]) / 2**20
        assert growth_mb < 4, f"the service grew by {growth_mb:.1f} MB under a steady overload"


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
                assert wait_for(lambda: blocked_on_lock(database_url) == 1)

                server.process.send_signal(signal.SIGTERM)
                assert wait_for(lambda: not _accepts(api), timeout=5)  # no new connections
                assert server.process.poll() is None  # but still draining the order in flight
                holder.commit()
            worker.join(10)
            assert replies["reply"].status == 201
            assert server.process.wait(15) == 0
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
