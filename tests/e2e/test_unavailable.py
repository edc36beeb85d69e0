"""503 with Retry-After when no pooled connection is free in time or the database connection is gone,
and a clean refusal to start without a database."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg

from flashsale.db.guard import TRUST_RECENT_S
from flashsale.serving.server_process import ServerProcess
from tests.e2e.api import Api
from tests.waiting import HANG_S, blocked_on_lock, wait_for

POOL_TIMEOUT_S = 0.5


class TestPoolExhausted:
    def test_503_with_retry_after_within_the_pool_timeout(self, database_url, sale, tmp_path):
        """Pool of one; its connection waits on a row lock the test holds; the next order cannot get a connection."""
        with ServerProcess(pool_size=1, pool_timeout=POOL_TIMEOUT_S, log_path=tmp_path / "serve.log") as server:
            api = Api(server.url)
            first: dict = {}
            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE", [sale.id])
                worker = threading.Thread(target=lambda: first.update(reply=api.order(sale.user_ids[0], sale.id)))
                worker.start()
                wait_for(lambda: blocked_on_lock(database_url) == 1, "the first order to queue on the row")

                started = time.monotonic()
                reply = api.order(sale.user_ids[1], sale.id)
                elapsed = time.monotonic() - started
                # Answered while the connection it waited for is still held (the first order still waits on the
                # row held here): it gave up after the pool timeout instead of waiting for the connection.
                assert worker.is_alive()
                holder.commit()  # release the row: the first order goes through
            worker.join(HANG_S)

            assert (reply.status, reply.json["error"]) == (503, "unavailable")
            assert reply.header("retry-after") == "1"
            assert elapsed >= POOL_TIMEOUT_S * 0.9  # it did wait the pool timeout (a lower bound holds under load)
            assert first["reply"].status == 201
            assert api.get("/health").status == 200
            warnings = server.wait_for_log(lambda line: line["level"] == "warning")
            assert [(w["error"], w["request_id"]) for w in warnings] == [("unavailable", reply.header("x-request-id"))]
            assert "PoolTimeout" in warnings[0]["cause"]


class TestConnectionLost:
    def test_a_broken_idle_connection_is_replaced_before_use(self, database_url, sale, tmp_path):
        """The pool tests a connection idle for more than TRUST_RECENT_S before handing it out: a request never gets
        one that the server closed while it sat in the pool."""
        name = "flashsale-connection-lost-test"  # libpq's application_name, so that only this server's are killed
        env = {"PGAPPNAME": name}
        with ServerProcess(pool_size=1, pool_timeout=2, log_path=tmp_path / "serve.log", env=env) as server:
            api = Api(server.url)
            assert api.get("/health").status == 200
            with psycopg.connect(database_url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", [name]
                ).fetchone()[0]
                assert killed == 1
                gone = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                wait_for(lambda: admin.execute(gone, [name]).fetchone()[0] == 0, "the killed backend to exit")
            # Not a synchronisation: the connection must have sat idle longer than the pool trusts an idle one.
            time.sleep(TRUST_RECENT_S * 1.2)

            assert api.order(sale.user_ids[0], sale.id).status == 201
            metrics = api.get("/metrics").body.decode()
            assert 'flashsale_pool_connections_lost_total{pool="flashsale"} 1.0' in metrics
            assert "flashsale_database_circuit_trips_total 0.0" in metrics


class TestNoDatabase:
    def test_serve_refuses_to_start_with_one_line(self, tmp_path):
        url = f"postgresql://postgres@/flashsale?host={tmp_path}&port=1"
        proc = subprocess.run(
            [sys.executable, "-m", "flashsale.cli.main", "serve", "--port", "1"],
            capture_output=True,
            text=True,
            env={"FLASHSALE_DATABASE_URL": url, "PATH": ""},
            timeout=60,
        )
        assert proc.returncode == 3
        assert proc.stderr.startswith("flashsale: error: cannot connect to")
        assert len(proc.stderr.strip().splitlines()) == 1
