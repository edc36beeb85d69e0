"""The http target end to end: the real order service (started by the runner, or the session's server given with
--base-url), real user ids from GET /users, the real database, then the audit."""

import json

import psutil

from flashsale.load import Closed, LoadConfig, Open, run_load_async, schedule
from tests.integration.test_cli import flashsale


class TestHttpTarget:
    def test_runner_starts_the_service_and_stops_it(self, database_url):
        proc = flashsale(
            "load", "--target", "http", "--vus", "3", "--think-ms", "10", "--duration", "1s", "--quiet", "--json",
            "--users", "20", "--inventory", "15", "--per-user-limit", "1",
        )  # fmt: skip
        summary = json.loads(proc.stdout)
        assert summary["target"] == "http"
        assert summary["meta"]["service_started"] is True
        assert summary["audit"]["ok"] is True
        assert summary["audit"]["orders"] == 15  # 20 users, one each, 15 units: it sells out
        assert summary["outcomes"]["created"] == 15  # every order the clients were told of, and no more
        assert set(summary["outcomes"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert summary["meta"]["service_cpu_percent"] is not None
        assert not psutil.pid_exists(summary["meta"]["service_pid"])  # stopped (and reaped) by the runner

    async def test_against_a_running_service(self, server, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", base_url=server.url, database_url=database_url, shape=Closed(vus=2, think_ms=20),
                duration_s=1.0,
                users=1500, inventory=1000, per_user_limit=100,
            )
        )  # fmt: skip
        summary = result.summary
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["meta"]["service_started"] is False
        assert summary["meta"]["users_fetched"] == 1500  # from GET /users, in two pages
        assert summary["orders"] > 0
        assert set(result.records["status"]) == {201}
        assert (result.records["outcome"] == "created").sum() == summary["audit"]["orders"]

    async def test_refusals_keep_their_status(self, server, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", base_url=server.url, database_url=database_url, shape=Closed(vus=2, think_ms=5),
                duration_s=0.5,
                users=2, inventory=1, per_user_limit=1,
            )
        )  # fmt: skip
        by_outcome = result.records.groupby("outcome", observed=True)["status"].unique()
        assert list(by_outcome["created"]) == [201]
        assert set(by_outcome.index) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert all(list(by_outcome[name]) == [409] for name in by_outcome.index if name != "created")
        assert result.ok


class TestHttpTargetOpenModel:
    async def test_requests_start_on_the_schedule_and_every_answer_is_audited(self, server, database_url):
        result = await run_load_async(
            LoadConfig(
                target="http", base_url=server.url, database_url=database_url, shape=Open(rate=40), duration_s=1.0,
                users=200, inventory=25, per_user_limit=1,
            )
        )  # fmt: skip
        summary, records = result.summary, result.records
        assert summary["model"] == "open"
        assert summary["meta"]["started"] + summary["meta"]["dropped_starts"] == 40
        starts = sorted(round(s * 1e9) for s in records["start_s"])
        assert set(starts) <= set(schedule(40, 1.0).tolist())  # scheduled starts, whatever the client's lag
        assert result.ok, summary["meta"]["audit_problems"]
        created = (records["outcome"] == "created").sum()
        assert created == summary["audit"]["orders"] <= 25
        assert set(records.loc[records["outcome"] == "created", "status"]) <= {201}
