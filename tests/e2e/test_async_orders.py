"""Asynchronous orders on the real server (`serve --accept async`, the original's phases 4 and 5): 202 with a
status URL at once, `pending` until a queue worker settles the order through the strategy, then `completed` (with
the order) or `failed` (with the reason); retries with a key get the same order; and every accepted order is
settled exactly once across a SIGKILL of the service and a restart of the database (audited)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from flashsale import config
from flashsale.db import embedded
from flashsale.serving.server_process import ServerProcess
from flashsale.testing import TestDatabase
from tests.e2e.api import Api
from tests.e2e.conftest import make_sale
from tests.e2e.test_admission_control import metric, orders_waiting_on_the_sale_lock
from tests.e2e.test_k6_original_scripts import audit
from tests.waiting import wait_for

# Blocks the strategy's SELECT ... FOR UPDATE of the sale row, but not the foreign-key check (FOR KEY SHARE) of
# the INSERT that records an accepted order: the test holds back settlement, not acceptance.
HOLD_SALE_ROW = "SELECT 1 FROM flash_sales WHERE id = %s FOR NO KEY UPDATE"


def async_server(
    tmp_path: Path, *, queue_size: int = 20, env: dict | None = None, name: str = "serve"
) -> ServerProcess:
    args = ["--accept", "async", "--queue-size", str(queue_size), "--queue-workers", "1"]
    return ServerProcess(pool_size=3, extra_args=args, log_path=tmp_path / f"{name}.log", env=env)


def post(api: Api, user, sale_id, quantity=1, **kwargs):
    body = {"user_id": str(user), "flash_sale_id": str(sale_id), "quantity": quantity}
    return api.post("/orders", json_body=body, **kwargs)


def status_of(api: Api, order_id) -> dict:
    return api.get(f"/orders/{order_id}/status").json


def settled(api: Api, order_ids) -> bool:
    return all(status_of(api, order_id)["status"] != "pending" for order_id in order_ids)


def pending_orders(database_url) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM orders WHERE status = 'PENDING'").fetchone()[0]


class TestAcceptAndSettle:
    def test_202_pending_while_the_row_is_locked_then_completed(self, database_url, sale, tmp_path):
        with async_server(tmp_path) as server:
            api = Api(server.url)
            with psycopg.connect(database_url) as holder:
                holder.execute(HOLD_SALE_ROW, [sale.id])
                reply = post(api, sale.user_ids[0], sale.id, quantity=2)
                assert reply.status == 202
                order_id = reply.json["order_id"]
                assert reply.json == {
                    "order_id": order_id,
                    "status": "pending",
                    "status_url": f"/orders/{order_id}/status",
                }
                assert reply.header("location") == reply.json["status_url"]
                wait_for(lambda: orders_waiting_on_the_sale_lock(database_url) == 1, "a settlement at the sale's lock")
                assert status_of(api, order_id) == {
                    "order_id": order_id,
                    "status": "pending",
                    "order": None,
                    "reason": None,
                }
                holder.commit()
            wait_for(lambda: settled(api, [order_id]), "the orders settled")

            done = status_of(api, order_id)
            assert (done["status"], done["reason"]) == ("completed", None)
            assert (done["order"]["order_id"], done["order"]["status"], done["order"]["quantity"]) == (
                order_id,
                "CONFIRMED",
                2,
            )
            assert api.get(f"/api/orders/{order_id}").json["status"] == "CONFIRMED"
            assert metric(api, 'flashsale_orders_total{outcome="accepted",strategy="pessimistic"}') == 1
        result = audit(database_url, sale.id)
        assert result.ok, result.problems()
        assert (result.orders, result.remaining) == (1, sale.inventory - 2)

    def test_beyond_the_stock_orders_fail_with_the_reason(self, database_url, tmp_path):
        sale = make_sale(database_url, users=6, inventory=2, per_user_limit=1)
        with async_server(tmp_path) as server:
            api = Api(server.url)
            replies = [post(api, user, sale.id) for user in sale.user_ids]
            assert [r.status for r in replies] == [202] * 6
            ids = [r.json["order_id"] for r in replies]
            wait_for(lambda: settled(api, ids), "the orders settled")
            outcomes = sorted((status_of(api, i)["status"], status_of(api, i)["reason"]) for i in ids)
        assert outcomes == [("completed", None)] * 2 + [("failed", "sold_out")] * 4
        result = audit(database_url, sale.id, accepted=[uuid.UUID(i) for i in ids])
        assert result.ok, result.problems()
        assert (result.orders, result.failed, result.pending) == (2, 4, 0)

    def test_a_retry_with_its_key_gets_the_same_order(self, database_url, sale, tmp_path):
        with async_server(tmp_path) as server:
            api = Api(server.url)
            key = {"Idempotency-Key": "async-1"}
            first = post(api, sale.user_ids[0], sale.id, headers=key)
            again = post(api, sale.user_ids[0], sale.id, headers=key)
            assert (first.status, again.status, again.header("idempotent-replayed")) == (202, 202, "true")
            assert again.json["order_id"] == first.json["order_id"]
            wait_for(lambda: settled(api, [first.json["order_id"]]), "the orders settled")
            later = post(api, sale.user_ids[0], sale.id, headers=key)
            other = post(api, sale.user_ids[0], sale.id, quantity=2, headers=key)
            reserved = post(api, sale.user_ids[0], sale.id, headers={"Idempotency-Key": "settle:x"})
        assert (later.json["order_id"], later.json["status"]) == (first.json["order_id"], "completed")
        assert (other.status, other.json["error"]) == (409, "idempotency_key_reused")
        assert (reserved.status, reserved.json["error"]) == (422, "invalid_idempotency_key")
        result = audit(database_url, sale.id)
        assert result.ok, result.problems()
        assert result.orders == 1

    def test_a_full_queue_refuses_at_once_and_stores_nothing(self, database_url, sale, tmp_path):
        """Queue of 1: the worker's settlement waits on the row lock, one waits in the queue, the third is 503."""
        with async_server(tmp_path, queue_size=1) as server:
            api = Api(server.url)
            with psycopg.connect(database_url) as holder:
                holder.execute(HOLD_SALE_ROW, [sale.id])
                working = post(api, sale.user_ids[0], sale.id)
                wait_for(lambda: orders_waiting_on_the_sale_lock(database_url) == 1, "an order at the sale's lock")
                queued = post(api, sale.user_ids[1], sale.id)
                refused = post(api, sale.user_ids[2], sale.id)
                holder.commit()
            assert (working.status, queued.status) == (202, 202)
            assert (refused.status, refused.json["error"], refused.header("retry-after")) == (503, "queue_full", "1")
            wait_for(lambda: settled(api, [working.json["order_id"], queued.json["order_id"]]), "the orders settled")
            assert metric(api, "flashsale_order_queue_overflow_total") == 1
        result = audit(database_url, sale.id)
        assert result.ok, result.problems()
        assert result.orders == 2  # the refused order was never stored


class TestNothingAcceptedIsLost:
    def test_after_a_sigkill_the_next_start_settles_every_pending_order_once(self, database_url, tmp_path):
        sale = make_sale(database_url, users=8, inventory=5, per_user_limit=1)
        with async_server(tmp_path, name="killed") as server:
            api = Api(server.url)
            with psycopg.connect(database_url) as holder:
                holder.execute(HOLD_SALE_ROW, [sale.id])
                replies = [post(api, user, sale.id) for user in sale.user_ids]
                wait_for(lambda: orders_waiting_on_the_sale_lock(database_url) == 1, "an order at the sale's lock")
                server.process.kill()  # SIGKILL: the queue and the settlement in progress die with it
                server.process.wait()
                holder.commit()
        assert [r.status for r in replies] == [202] * 8
        ids = [r.json["order_id"] for r in replies]
        # The settlement that waited at the lock dies with its connections: everything is still pending.
        wait_for(lambda: pending_orders(database_url) == 8, "8 orders pending")

        with async_server(tmp_path, name="restarted") as server:
            api = Api(server.url)
            wait_for(lambda: pending_orders(database_url) == 0, "the next start to settle them")
            outcomes = sorted(status_of(api, i)["status"] for i in ids)
        assert outcomes == ["completed"] * 5 + ["failed"] * 3
        result = audit(database_url, sale.id, accepted=[uuid.UUID(i) for i in ids])
        assert result.ok, result.problems()
        assert (result.orders, result.failed, result.remaining) == (5, 3, 0)


@pytest.fixture
def own_database(tmp_path_factory):
    """A PostgreSQL of this test's own (its data directory under the test's tmp), so that restarting it disturbs
    no other test; stopped at the end."""
    pgdata = tmp_path_factory.mktemp("own-pg") / "pgdata"
    with TestDatabase(pgdata) as url:
        yield url, pgdata


class TestDatabaseRestart:
    def test_orders_accepted_before_a_restart_are_settled_once_after_it(self, own_database, database_url, tmp_path):
        url, pgdata = own_database
        sale = make_sale(url, users=6, inventory=4, per_user_limit=1)
        with async_server(tmp_path, env={config.DATABASE_URL_ENV: url}) as server:
            api = Api(server.url)
            holder = psycopg.connect(url)
            holder.execute(HOLD_SALE_ROW, [sale.id])
            replies = [post(api, user, sale.id) for user in sale.user_ids]
            wait_for(lambda: orders_waiting_on_the_sale_lock(url) == 1, "an order at the sale's lock")
            info = embedded.running(pgdata)
            embedded.stop(pgdata)  # fast shutdown: every session ends, the holder's lock and the settlement too
            holder.close()
            embedded.resume(pgdata, info.socket_dir)
            ids = [r.json["order_id"] for r in replies]
            assert [r.status for r in replies] == [202] * 6
            wait_for(lambda: pending_orders(url) == 0, "the running workers to settle them")
            outcomes = sorted(status_of(api, i)["status"] for i in ids)
        assert outcomes == ["completed"] * 4 + ["failed"] * 2
        result = audit(url, sale.id, accepted=[uuid.UUID(i) for i in ids])
        assert result.ok, result.problems()
        assert (result.orders, result.failed, result.remaining) == (4, 2, 0)


class TestSeveralProcesses:
    def test_with_two_server_processes_every_order_is_settled_once(self, database_url, tmp_path):
        """`--workers 2`: a queue and a settler in each process; their sweeps may meet on an order, the claim
        decides."""
        sale = make_sale(database_url, users=12, inventory=7, per_user_limit=1)
        args = ["--accept", "async", "--queue-size", "20", "--queue-workers", "1"]
        with ServerProcess(pool_size=3, workers=2, extra_args=args, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            replies = [post(api, user, sale.id) for user in sale.user_ids]
            ids = [r.json["order_id"] for r in replies]
            wait_for(lambda: settled(api, ids), "the orders settled")
        assert [r.status for r in replies] == [202] * 12
        result = audit(database_url, sale.id, accepted=[uuid.UUID(i) for i in ids])
        assert result.ok, result.problems()
        assert (result.orders, result.failed, result.pending) == (7, 5, 0)


class TestRefusedAtAcceptance:
    """An order for a sale that is not open is refused at once (409 `sale_not_active`), stored nowhere, instead of
    accepted and failed at settlement; the service follows the window as it moves during the run."""

    def test_the_window_is_followed_as_it_opens_and_closes(self, database_url, tmp_path):
        sale = make_sale(database_url, users=40, inventory=40, per_user_limit=1)
        buyers, answers = iter(sale.user_ids[2:]), []

        def next_order_is(status: int) -> bool:
            answers.append(post(api, next(buyers), sale.id))
            return answers[-1].status == status

        move = "UPDATE flash_sales SET starts_at = now() + %s::interval, ends_at = now() + %s::interval WHERE id = %s"
        with psycopg.connect(database_url, autocommit=True) as conn, async_server(tmp_path) as server:
            api = Api(server.url)
            conn.execute(move, ["1 hour", "2 hours", sale.id])  # not open yet
            early = [post(api, user, sale.id) for user in sale.user_ids[:2]]
            assert {(r.status, r.json["error"]) for r in early} == {(409, "sale_not_active")}
            assert count_orders(conn, sale.id) == 0  # refused before anything was stored

            conn.execute(move, ["-1 hour", "1 hour", sale.id])  # open: the service learns it from the database
            wait_for(lambda: next_order_is(202), "an order accepted once open")

            conn.execute(move, ["-2 hours", "-1 hour", sale.id])  # closed
            wait_for(lambda: next_order_is(409), "an order refused once closed")
            accepted = [reply for reply in answers if reply.status == 202]
            assert count_orders(conn, sale.id) == len(accepted) >= 1  # those accepted while open, and only those
            assert {reply.json["error"] for reply in answers if reply.status != 202} <= {"sale_not_active"}


def count_orders(conn: psycopg.Connection, sale_id) -> int:
    return conn.execute("SELECT count(*) FROM orders WHERE flash_sale_id = %s", [sale_id]).fetchone()[0]
