"""The http target over two load worker processes, against the session's real service."""

import pytest

from flashsale.http.settings import ServiceSettings
from flashsale.load import Closed, LoadConfig, run_load_async
from tests.integration.test_load_workers import spawned_children

pytestmark = pytest.mark.slow


class TestHttpWorkers:
    async def test_http_target_over_two_processes_with_idempotency_retries(self, server, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", base_url=server.url, database_url=database_url, shape=Closed(vus=4, think_ms=5),
                duration_s=1.0,
                workers=2, users=50, inventory=1000, per_user_limit=100, retry_rate=0.3, retry_pool=10,
            )
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["meta"]["users_fetched"] == 50
        assert set(result.records["worker"]) == {0, 1}
        idempotency = summary["meta"]["idempotency"]
        assert idempotency["retries"] > 0
        # every key each process was answered for has exactly its one order (keys never collide across workers)
        assert summary["audit"]["keys"] == summary["outcomes"]["created"]
        assert summary["audit"]["key_violations"] == 0
        assert summary["outcomes"]["replayed"] > 0
        assert spawned_children() == []

    async def test_the_runner_starts_the_service_with_several_processes(self, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", database_url=database_url, shape=Closed(vus=4, think_ms=5), duration_s=1.0, workers=2,
                service=ServiceSettings(workers=2), users=50, inventory=40, per_user_limit=1,
            )
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["meta"]["service_workers"] == 2
        assert summary["audit"]["orders"] == 40 == summary["audit"]["acknowledged"]  # 50 users, one each: sold out
        assert summary["meta"]["service_cpu_percent"] > 0
        assert spawned_children() == []
