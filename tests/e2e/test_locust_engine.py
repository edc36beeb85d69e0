"""The Locust engine end to end: a real Locust master and two workers against the real order service and database,
its records checked against Locust's own count and audited; a service it cannot reach fails the start clearly; and
the packaged locustfile under plain Locust, audited with `flashsale audit`; and asynchronous orders (202s)
recorded, followed and audited as under the native engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter

import numpy as np
import psutil
import pytest

from flashsale.contract import is_error
from flashsale.http.settings import ServiceSettings
from flashsale.load.config import LoadConfig
from flashsale.load.locust.engine import LOCUSTFILE, LocustEngine
from flashsale.load.merge import merge
from flashsale.load.outcomes import Outcomes
from flashsale.load.runner import run_load_async
from flashsale.load.shapes import Closed
from flashsale.processes import ChildFailed
from flashsale.services.audit import audit_sale
from flashsale.serving.server_process import free_port
from tests.e2e.conftest import make_sale
from tests.integration.test_cli import flashsale

LEAD_NS = 500_000_000  # the origin is this far ahead of run(): every user is spawned and waiting by then
ANSWERS = {"created", "sold_out", "per_user_limit_exceeded", "replayed"}


def still_running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
class TestTwoWorkers:
    async def test_exact_records_of_every_request_audited(self, server, conn, make_scenario):
        sale = await make_scenario(users=1500, inventory=300, per_user_limit=1)  # two pages of GET /users
        config = LoadConfig(
            target="http", engine="locust", base_url=server.url, shape=Closed(vus=6, think_ms=5), warmup_s=0.5,
            duration_s=2.0,
            grace_s=2.0, retry_rate=0.2,
        )  # fmt: skip
        engine = LocustEngine(config, base_url=server.url, flash_sale_id=sale.flash_sale_id, workers=2)
        try:
            await engine.start()
            pids, results_dir = engine.pids, engine._dir
            origin = time.perf_counter_ns() + LEAD_NS
            results = await engine.run(origin)
        finally:
            await engine.stop()

        assert len(pids) == 3  # the master and two workers
        assert still_running(pids) == []
        assert not results_dir.exists()
        await engine.stop()  # again: nothing to do

        assert [r.worker for r in results] == [0, 1]
        assert all(r.requests > 0 for r in results), [r.requests for r in results]
        outcomes = Outcomes()
        merged = merge(results, outcomes)
        names = Counter(outcomes.name(i) for i in merged.records.outcome)
        assert sum(names.values()) == len(merged.records) == merged.stats.started - merged.stats.interrupted
        assert set(names) <= ANSWERS, names
        assert names["replayed"] > 0  # keys were resent, and recognised as replays
        # Locust counted the same requests (its last report reaches the master before the worker says it stopped).
        assert engine.locust_stats["requests"] == len(merged.records)
        assert engine.locust_stats["failures"] == sum(n for name, n in names.items() if is_error(name))

        start_s = np.frombuffer(merged.records.start_ns, dtype=np.int64) / 1e9
        assert start_s.min() >= 0.0  # nobody ordered before the origin
        assert start_s.max() < config.warmup_s + config.duration_s  # nor after the end
        assert np.frombuffer(merged.records.latency_ns, dtype=np.int64).min() > 0
        for result in results:
            assert 0 < result.cpu_s < result.wall_s
            assert result.wall_s >= config.warmup_s + config.duration_s

        audit = await audit_sale(
            conn,
            sale.flash_sale_id,
            acknowledged=bytes(merged.acknowledged),
            keys=merged.acknowledged_keys,
            key_disagreements=merged.disagreements,
        )
        assert audit.ok, audit.problems()
        assert audit.acknowledged_missing == 0
        assert audit.keys == len(merged.acknowledged_keys[0]) > 0
        assert audit.key_violations == 0
        assert audit.orders == names["created"]  # every order placed was acknowledged once as created
        assert audit.unacknowledged == 0


class TestFailures:
    async def test_a_service_it_cannot_reach_fails_the_start_with_locusts_output(self):
        unreachable = f"http://127.0.0.1:{free_port()}"
        config = LoadConfig(target="http", engine="locust", base_url=unreachable, shape=Closed(vus=2), duration_s=1.0)
        engine = LocustEngine(config, base_url=unreachable, flash_sale_id=uuid.uuid4(), workers=1)
        with pytest.raises(ChildFailed, match=r"worker 0 .* exited with status 1") as failed:
            await engine.start()
        assert "Connection refused" in str(failed.value)
        assert engine.pids == []  # stopped by start() itself


@pytest.mark.slow
class TestPlainLocust:
    def test_the_packaged_locustfile_runs_under_plain_locust_and_the_sale_audits(self, server, database_url):
        sale = make_sale(database_url, users=50, inventory=20, per_user_limit=1)
        path = flashsale("locustfile").stdout.strip()
        assert path == str(LOCUSTFILE)
        env = {k: v for k, v in os.environ.items() if k != "FLASHSALE_LOCUST_RESULTS"}
        locust = [
            sys.executable, "-m", "locust", "-f", path, "--headless", "-u", "3", "-r", "3", "-t", "2s",
            "--host", server.url, "--only-summary", "--think-ms", "10",
        ]  # fmt: skip
        proc = subprocess.run(
            locust,
            env={**env, "FLASH_SALE_ID": str(sale.id)},  # a parameter from the environment
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "POST     /api/orders" in proc.stderr  # Locust's summary

        audited = json.loads(flashsale("audit", "--sale", str(sale.id), "--json").stdout)
        assert audited["ok"] is True
        assert audited["orders"] == 20  # 50 users, one unit each, 20 units: it sold out


@pytest.mark.slow
class TestThroughTheRunner:
    def test_flashsale_load_engine_locust_reports_like_the_native_runner(self, server, database_url):
        """`flashsale load --engine locust`: the native summary's keys, engine and workers named, every request
        Locust counted in the exact records, and the same audit."""
        proc = flashsale(
            "load", "--target", "http", "--base-url", server.url, "--engine", "locust", "--workers", "2",
            "--vus", "4", "--think-ms", "10", "--duration", "2s", "--users", "40", "--inventory", "30",
            "--quiet", "--json",
        )  # fmt: skip
        summary = json.loads(proc.stdout)
        assert (summary["engine"], summary["workers"]) == ("locust", 2)
        assert summary["audit"]["ok"] is True
        assert summary["audit"]["orders"] == 30 == summary["audit"]["acknowledged"]
        assert summary["requests"] == summary["meta"]["locust_stats"]["requests"]
        assert len(summary["client_cpu_percent_by_worker"]) == 2


@pytest.mark.slow
class TestAsynchronousOrders:
    async def test_202s_are_accepted_followed_to_their_end_and_audited_as_under_the_native_engine(self, database_url):
        """`--engine locust --accept async`: every 202 is the outcome `accepted` (not the error `http_202`), its id
        reaches the audit, and each accepted order is followed to one end, as the native http target does."""
        config = LoadConfig(
            target="http", engine="locust", workers=2, database_url=database_url, shape=Closed(vus=4, think_ms=0),
            duration_s=1.5,
            users=100, inventory=5, per_user_limit=1, service=ServiceSettings(queue_size=50, accept="async"),
            poll_interval_s=0.05,
            poll_max_s=20.0,
        )  # fmt: skip
        result = await run_load_async(config)
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["meta"]["errors"] == {}  # a 202 is an answer of the contract, not an error
        assert set(records["outcome"].astype(str)) <= {"accepted", "queue_full"}
        accepted = summary["outcomes"]["accepted"]
        assert set(records.loc[records["outcome"] == "accepted", "status"]) == {202}
        assert set(records.loc[records["outcome"] == "accepted", "worker"]) == {0, 1}  # from both processes
        settled = summary["meta"]["async"]
        # every accepted id reached the audit, and each was settled
        assert settled["accepted"] == summary["audit"]["accepted"] == accepted
        assert summary["audit"]["accepted_unsettled"] == 0
        assert summary["audit"]["pending"] == 0
        # every 202 followed to exactly one end: confirmed (then acknowledged and audited) or refused
        assert settled["followed"] == accepted == sum(settled["settled"].values())
        assert set(settled["settled"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert settled["settled"]["created"] == 5 == summary["audit"]["orders"] == summary["audit"]["acknowledged"]
        assert settled["polls"] >= accepted
        assert settled["time_to_terminal_ms"]["min"] >= 50.0  # nothing is seen settled before the first poll
        # Locust counted the orders and the status requests it sent
        assert summary["meta"]["locust_stats"]["requests"] == summary["requests"] + settled["polls"]


@pytest.mark.slow
class TestHonouringRetryAfter:
    async def test_locust_users_wait_out_each_429_so_refusals_are_bounded_by_the_hint(self, database_url):
        """`--engine locust --honour-retry-after` against `--user-rate 0.5` on one user (429s ask for 1 or 2 s):
        each user's refusals start at least a second apart, and every wait reaches the summary (but a user's last
        refusal, when Locust stops the user before its pause)."""
        vus, duration_s = 2, 2.0
        config = LoadConfig(
            target="http", engine="locust", workers=1, database_url=database_url, shape=Closed(vus=vus, think_ms=0),
            duration_s=duration_s, users=1, inventory=1000, per_user_limit=1000,
            service=ServiceSettings(user_rate=0.5), honour_retry_after=True,
        )  # fmt: skip
        result = await run_load_async(config)
        summary, hinted = result.summary, result.summary["meta"]["retry_after"]
        assert result.ok, summary["meta"]["audit_problems"]
        assert set(summary["outcomes"]) <= {"created", "rate_limited"}
        refused = summary["outcomes"].get("rate_limited", 0)
        assert 1 <= refused <= vus * (duration_s // 1 + 1)
        assert refused - vus <= hinted["waits"] <= refused
        assert hinted["waits"] - vus <= hinted["waited_s"] <= 2 * hinted["waits"]
