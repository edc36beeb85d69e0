"""Admission control on the real server (`serve --user-rate`, `--queue-size`, `--queue-workers`): a user over the
rate is refused with 429 before any database work, and a full order queue refuses at once with 503 `queue_full`
(made full deterministically: a queue of one whose one worker waits on a row lock the test holds)."""

from __future__ import annotations

import collections
import re
import signal
import threading
import time
import uuid

import psycopg

from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api, Reply
from tests.e2e.test_k6_original_scripts import audit
from tests.e2e.test_serve_workers import served_by
from tests.waiting import HANG_S, wait_for


def metric(api: Api, name: str) -> float:
    text = api.get("/metrics").body.decode()
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not exported"
    return float(found.group(1))


def orders_waiting_on_the_sale_lock(database_url) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%FOR UPDATE%'"
        ).fetchone()[0]


class OrdersInFlight:
    """Orders sent each from a thread of its own; `answers()` waits for every one: its reply, or what was raised."""

    def __init__(self, api: Api, sale) -> None:
        self.api, self.sale = api, sale
        self.threads: list[threading.Thread] = []
        self.replies: list[Reply | Exception | None] = []

    def send(self, user) -> None:
        index = len(self.replies)
        self.replies.append(None)

        def order() -> None:
            try:
                self.replies[index] = self.api.order(user, self.sale.id)
            except Exception as exc:  # the service went away without an answer: the test says whether that is fine
                self.replies[index] = exc

        self.threads.append(threading.Thread(target=order))
        self.threads[-1].start()

    def answers(self) -> list[Reply | Exception | None]:
        for thread in self.threads:
            thread.join(HANG_S)
        return self.replies


def queued_behind_the_sale_lock(
    server: ServerProcess, database_url: str, holder: psycopg.Connection, sale, queued: int
) -> OrdersInFlight:
    """One order at the sale's row lock (taken here by `holder`), then `queued` more waiting in the order queue."""
    api = Api(server.url)
    orders = OrdersInFlight(api, sale)
    holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
    orders.send(sale.user_ids[0])
    wait_for(lambda: orders_waiting_on_the_sale_lock(database_url) == 1, "a queue worker at the sale's lock")
    for user in sale.user_ids[1 : 1 + queued]:
        orders.send(user)
    wait_for(lambda: metric(api, "flashsale_order_queue_depth") == queued, f"{queued} orders in the queue")
    return orders


def assert_told_is_stored(database_url: str, sale, replies: list[Reply | Exception | None]) -> None:
    """The orders of the sale in the database are exactly those answered 201, each once."""
    told = [reply.json["id"] for reply in replies if isinstance(reply, Reply) and reply.status == 201]
    with psycopg.connect(database_url) as conn:
        stored = [str(row[0]) for row in conn.execute("SELECT id FROM orders WHERE flash_sale_id = %s", [sale.id])]
    assert sorted(stored) == sorted(told)


class TestUserRate:
    def test_over_the_rate_is_429_with_retry_after_and_no_database_work(self, database_url, sale, tmp_path):
        """0.1 orders/s: a burst of one, the next token in 10 s. The refusal costs no pooled connection."""
        with ServerProcess(pool_size=2, extra_args=["--user-rate", "0.1"], log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            first = api.order(sale.user_ids[0], sale.id)
            pool_requests = metric(api, "flashsale_pool_requests_total")
            refused = api.order(sale.user_ids[0], sale.id)
            after = metric(api, "flashsale_pool_requests_total")
            other_user = api.order(sale.user_ids[1], sale.id)

            assert first.status == 201
            assert (refused.status, refused.json["error"]) == (429, "rate_limited")
            assert 9 <= int(refused.header("retry-after")) <= 10
            assert after == pool_requests  # no connection was taken for it
            assert other_user.status == 201  # the limit is per user
            assert metric(api, "flashsale_rate_limited_total") == 1
            assert metric(api, 'flashsale_orders_total{outcome="rate_limited",strategy="pessimistic"}') == 1

    def test_with_workers_each_process_limits_alone_so_a_user_gets_from_r_to_n_times_r(self, database_url, tmp_path):
        """`--user-rate 0.5` (a burst of one, the next token in 2 s) on two processes, one user's orders each on a
        connection of its own (the kernel spreads them over the processes): every process admits its first one and
        then no more than its own bucket refills; over both, the user gets at least one process's share and at most
        N times it, as the README says. Counted in the database, against each worker's answers."""
        from tests.e2e.conftest import make_sale

        rate, burst, workers = 0.5, 1, 2
        sale = make_sale(database_url, users=2, inventory=1000, per_user_limit=1000)
        user = sale.user_ids[0]
        args = ["--user-rate", f"{rate:g}"]
        with ServerProcess(pool_size=1, workers=workers, extra_args=args, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            replies: dict[str, object] = {}
            started = time.monotonic()
            while len(set(served_by(server, list(replies)).values())) < workers and len(replies) < 100:
                for _ in range(20):
                    rid = f"rate-{uuid.uuid4()}"
                    replies[rid] = api.order(user, sale.id, headers={"X-Request-ID": rid})
            window_s = time.monotonic() - started  # every admission of these orders happened within it
            worker_of = served_by(server, list(replies))

        assert {reply.status for reply in replies.values()} <= {201, 429}
        created = {rid: reply.json["id"] for rid, reply in replies.items() if reply.status == 201}
        with psycopg.connect(database_url) as conn:
            stored = [str(row[0]) for row in conn.execute("SELECT id FROM orders WHERE user_id = %s", [user])]
        assert sorted(stored) == sorted(created.values())  # each answered order once, nothing refused placed
        per_worker = collections.Counter(worker_of[rid] for rid in created)
        served = collections.Counter(worker_of.values())
        assert len(served) == workers
        at_most = burst + rate * window_s  # what one bucket can give within the window
        for pid in served:
            assert burst <= per_worker[pid] <= at_most, (pid, per_worker[pid], window_s)
        assert workers * burst <= len(stored) <= workers * at_most  # beyond one process: admission is per process

    def test_without_the_flag_nobody_is_limited(self, api, database_url):
        from tests.e2e.conftest import make_sale

        sale = make_sale(database_url, users=2, inventory=100, per_user_limit=100)
        replies = [api.order(sale.user_ids[0], sale.id).status for _ in range(20)]
        assert replies == [201] * 20


class TestOrderQueue:
    def test_a_full_queue_answers_503_at_once_and_the_queued_orders_go_through(self, database_url, sale, tmp_path):
        """Queue of 1, one worker. The worker's order waits on the sale row the test locks; the next order waits
        in the queue; the third finds it full."""
        args = ["--queue-size", "1", "--queue-workers", "1"]
        with ServerProcess(pool_size=4, extra_args=args, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            replies: dict[str, object] = {}

            def order(name, user):
                replies[name] = api.order(user, sale.id)

            threads = []
            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                threads.append(threading.Thread(target=order, args=("working", sale.user_ids[0])))
                threads[-1].start()
                wait_for(lambda: orders_waiting_on_the_sale_lock(database_url) == 1, "a worker at the sale's lock")
                threads.append(threading.Thread(target=order, args=("queued", sale.user_ids[1])))
                threads[-1].start()
                wait_for(lambda: metric(api, "flashsale_order_queue_depth") == 1, "the order in the queue")

                # Answered while the lock is still held, so without waiting for a place: a refusal that waited
                # would wait for the lock released below, and time out.
                refused = api.order(sale.user_ids[2], sale.id)
                assert orders_waiting_on_the_sale_lock(database_url) == 1  # the queued one never reached the lock
                assert metric(api, "flashsale_order_queue_depth") == 1  # refused with the queue full
                holder.commit()
            for thread in threads:
                thread.join(15)

            assert (refused.status, refused.json["error"]) == (503, "queue_full")
            assert refused.header("retry-after") == "1"
            assert (replies["working"].status, replies["queued"].status) == (201, 201)
            assert metric(api, "flashsale_order_queue_overflow_total") == 1
            assert metric(api, "flashsale_order_queue_depth") == 0
            result = audit(database_url, sale.id)
            assert result.ok, result.problems()
            assert result.orders == 2

    def test_with_several_workers_and_processes_every_order_is_served(self, database_url, tmp_path):
        """`--workers 2` keeps working with a queue and a rate limit in each process."""
        from tests.e2e.conftest import make_sale

        sale = make_sale(database_url, users=10, inventory=6, per_user_limit=100)
        args = ["--queue-size", "50", "--queue-workers", "2", "--user-rate", "1000"]
        with ServerProcess(pool_size=2, workers=2, extra_args=args, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            statuses = []
            threads = [
                threading.Thread(target=lambda u=u: statuses.append(api.order(u, sale.id).status))
                for u in sale.user_ids
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert sorted(statuses) == [201] * 6 + [409] * 4
            assert metric(api, "flashsale_order_queue_overflow_total") == 0
        assert audit(database_url, sale.id).ok


class TestSigtermWithQueuedOrders:
    """SIGTERM while orders wait in the queue behind one that waits on the sale's row lock (held by the test): every
    order a client was told was placed is in the database, once, and every order in the database was answered 201."""

    QUEUE = ("--queue-size", "3", "--queue-workers", "1")

    def test_the_drain_carries_out_the_queued_orders_and_answers_them(self, database_url, sale, tmp_path):
        with ServerProcess(pool_size=2, extra_args=[*self.QUEUE], log_path=tmp_path / "serve.log") as server:
            with psycopg.connect(database_url) as holder:
                orders = queued_behind_the_sale_lock(server, database_url, holder, sale, queued=3)
                server.process.send_signal(signal.SIGTERM)
                assert server.wait_for_log(lambda line: line["message"] == "Shutting down", HANG_S)
                assert server.process.poll() is None  # draining: the orders wait for the lock
                holder.commit()
            replies = orders.answers()
            status = server.process.wait(HANG_S)

        assert status == 0
        assert [reply.status for reply in replies] == [201] * 4
        assert_told_is_stored(database_url, sale, replies)

    def test_orders_left_when_the_drain_times_out_are_refused_and_none_is_placed(self, database_url, sale, tmp_path):
        """`--drain-timeout 0.5s` while the lock is held past it and past the stop margin: the running order and the
        queued ones are cut; none may be placed, no client may be told it was, and those that never left the queue
        are told they were not placed (503 `unavailable`, to retry), not an internal error."""
        args = [*self.QUEUE, "--drain-timeout", "0.5s", "--stop-margin", "1s"]
        with (
            ServerProcess(pool_size=2, extra_args=args, log_path=tmp_path / "serve.log") as server,
            psycopg.connect(database_url) as holder,
        ):
            orders = queued_behind_the_sale_lock(server, database_url, holder, sale, queued=3)
            server.process.send_signal(signal.SIGTERM)
            status = server.process.wait(HANG_S)  # the lock is held until the service is gone
            replies = orders.answers()
            holder.commit()

        assert status == 0
        at_the_lock, *queued = replies
        assert at_the_lock.status == 500  # cut while placed: the client cannot be told more (its query was cancelled)
        assert [reply.status for reply in queued] == [503] * 3  # never placed: told so, to retry
        assert {reply.json["error"] for reply in queued} == {"unavailable"}
        assert_told_is_stored(database_url, sale, replies)

    def test_an_order_begun_when_the_drain_times_out_is_answered_when_it_commits(self, database_url, sale, tmp_path):
        """The lock is released after the drain timed out (uvicorn has cancelled the requests), within the stop
        margin: the order being placed commits, and its client is told so (201), not left with an error for an
        order that exists; the queued ones were never placed and are told so."""
        args = [*self.QUEUE, "--drain-timeout", "0.5s", "--stop-margin", f"{HANG_S * 2:g}s"]
        with (
            ServerProcess(pool_size=2, extra_args=args, log_path=tmp_path / "serve.log") as server,
            psycopg.connect(database_url) as holder,
        ):
            orders = queued_behind_the_sale_lock(server, database_url, holder, sale, queued=3)
            server.process.send_signal(signal.SIGTERM)
            cancelled = server.wait_for_log(lambda line: line["message"].startswith("Cancel 4 running task"), HANG_S)
            assert cancelled, "uvicorn did not cancel the requests left after the drain timeout"
            holder.commit()  # the begun order takes the lock and commits after its request was cancelled
            replies = orders.answers()
            status = server.process.wait(HANG_S)

        assert status == 0
        at_the_lock, *queued = replies
        assert at_the_lock.status == 201
        assert [reply.status for reply in queued] == [503] * 3
        assert_told_is_stored(database_url, sale, replies)
