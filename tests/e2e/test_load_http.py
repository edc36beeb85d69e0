"""The http target end to end: the real order service (started by the runner, or by the test and given with
--base-url), real user ids from GET /users, the real database, then the audit."""

import importlib.util
import json

import psutil
import pytest

from flashsale.load import LoadConfig, run_load_async
from flashsale.load.service import ServiceProcess
from tests.integration.test_cli import flashsale

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flashsale.http") is None,
    reason="the HTTP service (flashsale.http, issue 3) is not on this branch yet",
)


class TestHttpTarget:
    def test_runner_starts_the_service_and_stops_it(self, database_url):
        proc = flashsale(
            "load",
            "--target",
            "http",
            "--vus",
            "3",
            "--think-ms",
            "10",
            "--duration",
            "1s",
            "--quiet",
            "--json",
            "--users",
            "20",
            "--inventory",
            "15",
            "--per-user-limit",
            "1",
        )
        summary = json.loads(proc.stdout)
        assert summary["target"] == "http"
        assert summary["meta"]["service_started"] is True
        assert summary["audit"]["ok"] is True
        assert summary["audit"]["orders"] == 15  # 20 users, one each, 15 units: it sells out
        assert summary["outcomes"]["created"] <= 15
        assert set(summary["outcomes"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert not psutil.pid_exists(summary["meta"]["service_pid"])  # stopped (and reaped) by the runner

    async def test_against_a_running_service(self, database_url, make_scenario):
        service = ServiceProcess(strategy="pessimistic", pool_size=4, database_url=database_url)
        base_url = await service.start()
        try:
            result = await run_load_async(
                LoadConfig(
                    target="http",
                    base_url=base_url,
                    database_url=database_url,
                    vus=2,
                    think_ms=20,
                    duration_s=1.0,
                    users=30,
                    inventory=1000,
                    per_user_limit=100,
                )
            )
        finally:
            await service.stop()
        summary = result.summary
        assert result.ok
        assert summary["meta"]["service_started"] is False
        assert summary["orders"] > 0
        assert set(result.records["status"]) == {201}
        assert (result.records["outcome"] == "created").sum() == summary["audit"]["orders"]
        assert service.process.returncode is not None
