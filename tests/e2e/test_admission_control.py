"""Admission control on the real server (`serve --user-rate`, `--queue-size`, `--queue-workers`): a user over the
rate is refused with 429 before any database work, and a full order queue refuses at once with 503 `queue_full`
(made full deterministically: a queue of one whose one worker waits on a row lock the test holds)."""

from __future__ import annotations

import re
import threading
import time

import psycopg

from flashsale.http.server_process import ServerProcess
from tests.e2e.api import Api
from tests.e2e.test_k6_original_scripts import audit
from tests.waiting import wait_for


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

                started = time.monotonic()
                refused = api.order(sale.user_ids[2], sale.id)
                elapsed = time.monotonic() - started
                assert orders_waiting_on_the_sale_lock(database_url) == 1  # the queued one never reached the lock
                holder.commit()
            for thread in threads:
                thread.join(15)

            assert (refused.status, refused.json["error"]) == (503, "queue_full")
            assert refused.header("retry-after") == "1"
            assert elapsed < 1.0
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
