"""`flashsale serve --workers N` on the real database: both workers serve, `/metrics` from either one reports the
totals over both, SIGTERM drains the requests in flight on every worker, and nothing of the service outlives it.

Which worker served a request is read from its access log line (`pid`), or, for a connection still open, from the
worker process that holds the accepted socket (psutil)."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import signal
import threading
import time
import uuid
from datetime import datetime

import psutil
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flashsale import aio
from flashsale.db import connection
from flashsale.http.log import ACCESS_LOGGER
from flashsale.http.settings import GRACEFUL_SHUTDOWN_S, ServiceSettings
from flashsale.http.shared_metrics import REFRESH_S
from flashsale.load.measured_server import MeasuredServer, cpu_seconds
from flashsale.processes import ChildFailed
from flashsale.services.audit import audit_sale
from flashsale.serving import EXIT_NOT_STARTED
from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api
from tests.e2e.conftest import make_sale
from tests.e2e.test_observability import scrape, value
from tests.waiting import HANG_S, blocked_on_lock, wait_for

WORKERS = 2
POOL_SIZE = 2  # per worker
BATCH = 8  # requests sent before looking at which workers served them
LOG_CLOCK_S = 0.002  # log times are written to the millisecond: two readings may each be rounded by up to 1 ms


def batched_workers(log_path) -> ServerProcess:
    return ServerProcess(workers=WORKERS, strategy="batched", pool_size=POOL_SIZE, log_path=log_path)


@pytest.fixture(scope="module")
def workers_server(database_url, tmp_path_factory):
    with batched_workers(tmp_path_factory.mktemp("serve-workers") / "serve.log") as server:
        yield server
    assert server.process.returncode == 0


@pytest.fixture
def fresh_workers_server(database_url, tmp_path):
    """A server that has taken no order yet: a worker mirrors its strategy counters into the shared metrics every
    REFRESH_S, so a scrape taken "before" on a server that has just taken orders may not count them all yet."""
    with batched_workers(tmp_path / "serve.log") as server:
        yield server
    assert server.process.returncode == 0


def served_by(server: ServerProcess, request_ids: list[str]) -> dict[str, int]:
    """The pid of the process that served each request, from its access log line."""
    wanted, found = set(request_ids), {}

    def all_logged() -> bool:
        for line in server.log_lines():
            if line["logger"] == ACCESS_LOGGER and line.get("request_id") in wanted:
                found[line["request_id"]] = line["pid"]
        return len(found) == len(wanted)

    wait_for(all_logged, f"the access lines of {len(wanted)} requests")
    return found


def audit(database_url: str, sale_id):
    async def go():
        async with await connection.connect_async(database_url) as conn:
            return await audit_sale(conn, sale_id)

    return aio.run(go())


def place_orders_until_every_worker_served(server, api, sale) -> dict[str, tuple[int, int]]:
    """One order per user, each on its own connection, in batches until every worker has served some (the kernel
    spreads connections by a hash of their addresses: a batch on a single worker is rare, several in a row rarer);
    request id -> (status, pid)."""
    users = iter(sale.user_ids)
    placed: dict[str, tuple[int, int]] = {}
    while len({pid for _, pid in placed.values()}) < WORKERS and len(placed) + BATCH <= len(sale.user_ids):
        statuses = {}
        for user in [next(users) for _ in range(BATCH)]:
            rid = f"workers-{uuid.uuid4()}"
            statuses[rid] = api.order(user, sale.id, headers={"X-Request-ID": rid}).status
        placed.update({rid: (statuses[rid], pid) for rid, pid in served_by(server, list(statuses)).items()})
    return placed


class TestWorkers:
    def test_every_worker_listens_and_the_parent_does_not(self, workers_server):
        pids = workers_server.worker_pids()
        assert len(pids) == WORKERS
        assert workers_server.pid not in pids
        children = {child.pid for child in psutil.Process(workers_server.pid).children()}
        assert set(pids) <= children

    def test_both_workers_take_orders_and_serve_reads(self, workers_server, database_url):
        api = Api(workers_server.url)
        sale = make_sale(database_url, users=6 * BATCH, inventory=6 * BATCH, per_user_limit=1)

        placed = place_orders_until_every_worker_served(workers_server, api, sale)

        assert {status for status, _ in placed.values()} == {201}
        assert {pid for _, pid in placed.values()} == set(workers_server.worker_pids())
        reads = {}
        for _ in range(BATCH):
            rid = f"read-{uuid.uuid4()}"
            reply = api.get(f"/api/flash-sales/{sale.id}", headers={"X-Request-ID": rid})
            reads[rid] = (reply.status, reply.json["remaining_inventory"])
        assert set(reads.values()) == {(200, sale.inventory - len(placed))}
        served_by(workers_server, list(reads))  # each read was logged by a worker
        result = audit(database_url, sale.id)
        assert result.ok
        assert result.orders == len(placed)

    def test_metrics_from_either_worker_are_the_totals_over_both(self, fresh_workers_server, database_url):
        workers_server = fresh_workers_server
        api = Api(workers_server.url)
        sale = make_sale(database_url, users=6 * BATCH, inventory=6 * BATCH, per_user_limit=1)
        before = scrape(api)

        placed = place_orders_until_every_worker_served(workers_server, api, sale)
        per_worker = collections.Counter(pid for _, pid in placed.values())
        assert len(per_worker) == WORKERS
        assert {status for status, _ in placed.values()} == {201}

        def grown(samples, name, **labels) -> float:
            return value(samples, name, **labels) - value(before, name, **labels)

        batched_orders = ("flashsale_strategy_events_total", {"strategy": "batched", "event": "batched_orders"})
        # A worker mirrors its strategy counters every REFRESH_S: the other one's may lag that long.
        wait_for(
            lambda: grown(scrape(api), batched_orders[0], **batched_orders[1]) == len(placed),
            "both workers' strategy counters in the totals",
            timeout=10 * REFRESH_S,
        )

        scrapes: dict[int, dict] = {}  # scraping worker's pid -> its answer
        for _ in range(6 * BATCH):
            rid = f"scrape-{uuid.uuid4()}"
            reply = api.get("/metrics", headers={"X-Request-ID": rid})
            scrapes.setdefault(served_by(workers_server, [rid])[rid], parse(reply.body))
            if len(scrapes) == WORKERS:
                break
        assert set(scrapes) == set(workers_server.worker_pids())
        for samples in scrapes.values():
            assert grown(samples, "flashsale_orders_total", strategy="batched", outcome="created") == sum(
                per_worker.values()
            )
            assert grown(
                samples,
                "flashsale_http_request_duration_seconds_count",
                method="POST",
                route="/api/orders",
                status="201",
            ) == len(placed)
            assert grown(samples, batched_orders[0], **batched_orders[1]) == len(placed)
            assert grown(samples, "flashsale_pool_requests_total", pool="flashsale") >= len(placed)
            assert value(samples, "flashsale_pool_max_connections", pool="flashsale") == WORKERS * POOL_SIZE
            assert value(samples, "flashsale_pool_connections", pool="flashsale") == WORKERS * POOL_SIZE
            assert value(samples, "flashsale_service_workers") == WORKERS
        result = audit(database_url, sale.id)
        assert result.ok
        assert result.orders == len(placed)


def parse(body: bytes) -> dict[tuple[str, frozenset], float]:
    """A `/metrics` answer's samples, keyed as `tests.e2e.test_observability.scrape` keys them."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


class Connection:
    """One client connection, opened now, whose request is sent later (from a thread)."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.http.connect()
        self.local_port = self.http.sock.getsockname()[1]
        self.reply: tuple[int, dict] | None = None

    def worker(self, server: ServerProcess) -> int | None:
        """The worker that accepted this connection (None until one has)."""
        for pid in server.worker_pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if conn.laddr.port == server.port and conn.raddr and conn.raddr.port == self.local_port:
                        return pid
        return None

    def order(self, user_id, sale_id) -> None:
        body = json.dumps({"user_id": str(user_id), "flash_sale_id": str(sale_id), "quantity": 1})
        self.http.request("POST", "/api/orders", body=body, headers={"Content-Type": "application/json"})
        response = self.http.getresponse()
        self.reply = (response.status, json.loads(response.read()))
        self.http.close()


def accepted_by(server: ServerProcess, conn: Connection) -> int:
    pid = None

    def accepted() -> bool:
        nonlocal pid
        pid = conn.worker(server)
        return pid is not None

    wait_for(accepted, "a worker to accept the connection")
    return pid


def connections_on_every_worker(server: ServerProcess, per_worker: int, at_most: int = 64) -> list[Connection]:
    """Open connections until each worker has accepted `per_worker` of them; the spare ones are closed."""
    kept: dict[int, list[Connection]] = collections.defaultdict(list)
    for _ in range(at_most):
        conn = Connection(server)
        pid = accepted_by(server, conn)
        if len(kept[pid]) < per_worker:
            kept[pid].append(conn)
        else:
            conn.http.close()
        if len(kept) == WORKERS and all(len(conns) == per_worker for conns in kept.values()):
            return [conn for conns in kept.values() for conn in conns]
    pytest.fail(f"{at_most} connections did not reach every worker: {dict(kept)}")


class TestShutdown:
    def test_sigterm_drains_the_orders_in_flight_on_every_worker_and_exits_0(self, database_url, tmp_path):
        sale = make_sale(database_url, users=10, inventory=5, per_user_limit=1)
        server = ServerProcess(workers=WORKERS, pool_size=POOL_SIZE, log_path=tmp_path / "serve.log").start()
        try:
            workers = server.worker_pids()
            in_flight = connections_on_every_worker(server, per_worker=POOL_SIZE)
            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                threads = [
                    threading.Thread(target=conn.order, args=(user, sale.id))
                    for conn, user in zip(in_flight, sale.user_ids, strict=False)
                ]
                for thread in threads:
                    thread.start()
                wait_for(lambda: blocked_on_lock(database_url) == len(in_flight), "the orders in flight to block")

                server.process.send_signal(signal.SIGTERM)
                wait_for(lambda: not server.worker_pids(), "no worker listening", timeout=GRACEFUL_SHUTDOWN_S)
                assert not _accepts(server)
                assert all(psutil.pid_exists(pid) for pid in workers)  # but all are draining their orders
                assert server.process.poll() is None
                holder.commit()
            for thread in threads:
                thread.join(GRACEFUL_SHUTDOWN_S * 2)
            assert [conn.reply[0] for conn in in_flight] == [201] * len(in_flight)
            assert server.process.wait(GRACEFUL_SHUTDOWN_S * 3) == 0
        finally:
            server.stop()
        assert not [pid for pid in workers if psutil.pid_exists(pid)]
        result = audit(database_url, sale.id)
        assert result.ok
        assert result.orders == len(in_flight)
        finished = {line["pid"] for line in server.log_lines() if line["message"] == "Application shutdown complete."}
        assert finished == set(workers)

    def test_a_worker_that_dies_is_reported_and_the_other_carries_on(self, database_url, tmp_path):
        with ServerProcess(workers=WORKERS, pool_size=1, log_path=tmp_path / "serve.log") as server:
            victim, survivor = server.worker_pids()
            psutil.Process(victim).kill()
            (report,) = server.wait_for_log(lambda line: line["message"] == "worker exited")
            assert (report["pid"], report["signal"], report["workers_left"]) == (victim, "SIGKILL", 1)

            api = Api(server.url)
            rids = [f"after-{uuid.uuid4()}" for _ in range(BATCH)]
            assert [api.get("/health", headers={"X-Request-ID": rid}).status for rid in rids] == [200] * BATCH
            assert set(served_by(server, rids).values()) == {survivor}
            assert value(scrape(api), "flashsale_service_workers") == 1
        assert server.process.returncode == 5  # EXIT_UNCLEAN_STOP: stopped, but not every worker ended well
        assert not psutil.pid_exists(survivor)

    def test_workers_whose_parent_was_killed_drain_and_stop_leaves_nothing(self, database_url, tmp_path):
        # A killed parent cannot remove its metrics directory: let it make it under tmp_path.
        env = {"TMPDIR": str(tmp_path)}
        server = ServerProcess(workers=WORKERS, pool_size=1, log_path=tmp_path / "serve.log", env=env).start()
        workers = server.worker_pids()
        server.process.kill()
        assert server.stop() == -signal.SIGKILL
        assert not [pid for pid in workers if psutil.pid_exists(pid)]
        drained = {
            line["pid"] for line in server.log_lines() if line["message"].startswith("the parent process is gone")
        }
        assert drained == set(workers)

    def test_every_worker_lost_exits_4_by_itself(self, database_url, tmp_path):
        server = ServerProcess(workers=WORKERS, pool_size=1, log_path=tmp_path / "serve.log").start()
        try:
            workers = server.worker_pids()
            for pid in workers:
                psutil.Process(pid).kill()
            status = server.process.wait(HANG_S)
        finally:
            server.stop()
        assert status == 4  # EXIT_WORKERS_LOST, documented in `serve --help`: not 5, a stop that went wrong
        lost = [line for line in server.log_lines() if line["message"] == "worker exited"]
        assert sorted((line["pid"], line["signal"]) for line in lost) == sorted((pid, "SIGKILL") for pid in workers)
        assert not [line for line in server.log_lines() if line["message"] == "stopping"]

    def test_a_worker_that_ignores_the_stop_is_killed_after_the_margin_with_status_5(self, database_url, tmp_path):
        """A stopped (SIGSTOP) worker cannot drain; with `--drain-timeout` and `--stop-margin` short, the parent
        kills it once both have passed (never before), the other drains as usual, and the exit status says so."""
        drain_s, margin_s = 0.5, 0.5
        args = ["--drain-timeout", f"{drain_s}s", "--stop-margin", f"{margin_s}s"]
        server = ServerProcess(workers=WORKERS, pool_size=1, extra_args=args, log_path=tmp_path / "serve.log").start()
        try:
            stuck, other = server.worker_pids()
            psutil.Process(stuck).suspend()
            server.process.send_signal(signal.SIGTERM)
            status = server.process.wait(HANG_S)  # without the kill, the parent would wait for `stuck` for ever
        finally:
            server.stop()
        assert status == 5  # EXIT_UNCLEAN_STOP
        assert not psutil.pid_exists(stuck)
        lines = server.log_lines()
        (stopping,) = [line for line in lines if line["message"] == "stopping"]
        killed = [line for line in lines if line["message"] == "worker did not stop in time: killed"]
        assert [line["pid"] for line in killed] == [stuck]
        waited = (datetime.fromisoformat(killed[0]["time"]) - datetime.fromisoformat(stopping["time"])).total_seconds()
        assert waited >= drain_s + margin_s - LOG_CLOCK_S  # not before the drain and the margin have passed
        finished = {line["pid"] for line in lines if line["message"] == "Application shutdown complete."}
        assert finished == {other}


class TestSigint:
    @pytest.mark.parametrize("workers", [1, WORKERS])
    def test_ctrl_c_drains_every_process_and_exits_130(self, database_url, tmp_path, workers):
        server = ServerProcess(workers=workers, pool_size=1, log_path=tmp_path / "serve.log").start()
        try:
            serving = server.worker_pids()
            server.process.send_signal(signal.SIGINT)  # the parent only, as `kill -INT`: it stops the workers
            status = server.process.wait(HANG_S)
        finally:
            server.stop()
        assert status == 130
        finished = {line["pid"] for line in server.log_lines() if line["message"] == "Application shutdown complete."}
        assert finished == set(serving)
        assert not [pid for pid in serving if psutil.pid_exists(pid)]


class TestPortClaim:
    @pytest.mark.parametrize("second_workers", [1, WORKERS])
    def test_a_second_server_on_a_taken_port_exits_3_and_takes_none_of_its_connections(
        self, workers_server, tmp_path, second_workers
    ):
        """The first server's sockets have SO_REUSEPORT; a second one must not join them (the kernel would give it
        part of every load run's connections), with `--workers N` (the parent's claim) or without (its own bind)."""
        first_workers = workers_server.worker_pids()
        second = ServerProcess(
            workers=second_workers,
            pool_size=1,
            extra_args=["--port", str(workers_server.port)],  # the last --port wins
            log_path=tmp_path / "second.log",
        )
        second.port = workers_server.port  # its worker_pids(): its processes that listen on the first one's port
        try:
            second.launch()
            wait_for(lambda: second.process.poll() is not None or second.worker_pids(), "it to exit or to listen")
            sharing = second.worker_pids()
            status = None if sharing else second.process.wait(HANG_S)
        finally:
            second.stop()
        assert sharing == []
        assert status == EXIT_NOT_STARTED
        lines = second.log_lines()
        assert [line for line in lines if line["message"].startswith(f"cannot bind 127.0.0.1:{workers_server.port}")]
        assert not [line for line in lines if line["message"] == "ready"]  # refused before any pool was opened
        assert workers_server.worker_pids() == first_workers


class TestStartup:
    @pytest.mark.slow
    def test_workers_that_cannot_open_their_pools_stop_the_service_with_status_3(self, database_url, tmp_path):
        """The parent reaches the database, the workers cannot all get their connections (a role limited to one
        connection, pools of two): the service does not start, and nothing is left running."""
        role = "flashsale_one_connection"
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            user = admin.execute("SELECT current_user").fetchone()[0]
            admin.execute(f'CREATE ROLE {role} LOGIN CONNECTION LIMIT 1 IN ROLE "{user}"')
        try:
            url = database_url.replace(f"//{user}@", f"//{role}@")
            server = ServerProcess(
                workers=WORKERS,
                pool_size=2,
                log_path=tmp_path / "serve.log",
                env={"FLASHSALE_DATABASE_URL": url},
                extra_args=["--open-timeout", "2s"],  # the pools wait this long for a connection that never comes
            )
            with pytest.raises(ChildFailed, match=f"exited with status {EXIT_NOT_STARTED}"):
                server.start()
        finally:
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute(f"DROP ROLE IF EXISTS {role}")
        lines = server.log_lines()
        failed = [line for line in lines if line["message"] == "worker failed to start"]
        assert failed
        assert all(line["exit_status"] == EXIT_NOT_STARTED for line in failed)
        assert not [line for line in lines if line["message"] == "serving"]
        started = {line["pid"] for line in lines if line["message"].startswith("Started server process")}
        assert len(started) == WORKERS
        assert not [pid for pid in started if psutil.pid_exists(pid)]


def _accepts(server: ServerProcess) -> bool:
    try:
        Api(server.url, timeout=5).get("/openapi.json")
    except OSError:
        return False
    return True


class TestLoadRunnersService:
    async def test_its_cpu_counts_every_worker(self, database_url):
        """The load runner's `service_cpu_percent` comes from here: with workers, the parent alone is nearly idle."""
        settings = ServiceSettings(strategy="pessimistic", pool_size=1, workers=WORKERS)
        service = MeasuredServer(settings, database_url=database_url)
        await service.start()
        try:
            workers = service.server.worker_pids()
            assert len(workers) == WORKERS
            parent = psutil.Process(service.pid)
            parent_s = sum(parent.cpu_times()[:2])
            workers_s = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in workers)
            assert cpu_seconds(parent) >= parent_s + workers_s

            def workers_cpu_s() -> float:
                return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in workers)

            outer_started, tree_before_s = time.perf_counter(), cpu_seconds(parent)
            service.mark_cpu()
            marked = time.perf_counter()
            before_s = workers_cpu_s()
            api = Api(service.base_url)
            wait_for(
                lambda: api.get("/health").status == 200 and workers_cpu_s() > before_s,
                "the workers' CPU time to grow by a clock tick",
                interval=0,
            )
            worked_s = workers_cpu_s() - before_s
            asking = time.perf_counter()
            percent = service.cpu_percent()
            tree_after_s, outer_s = cpu_seconds(parent), time.perf_counter() - outer_started
            # Its window lies within ours and contains [marked, asking]: the CPU it counts includes the workers' (not
            # only the idle parent's), and no more than the whole service used around it.
            assert percent is not None
            assert 100 * worked_s / outer_s <= percent <= 100 * (tree_after_s - tree_before_s) / (asking - marked)
        finally:
            await service.stop()
        assert not [pid for pid in workers if psutil.pid_exists(pid)]
