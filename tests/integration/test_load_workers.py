"""`--workers N`: a run split over worker processes against the real database (and the real service), merged
exactly on one time base, audited once after every worker has ended, and no process left behind."""

import numpy as np
import psutil
import pytest

from flashsale.load import Closed, LoadConfig, Open, run_load_async, schedule
from flashsale.processes import ChildFailed
from flashsale.serving.server_process import free_port

pytestmark = pytest.mark.slow


def config(database_url, **changes):
    return LoadConfig(database_url=database_url, **changes)


def spawned_children() -> list[psutil.Process]:
    """This process's multiprocessing children that are still alive (spawned workers run `spawn_main`)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.is_running() and any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


class TestProcessWorkers:
    async def test_open_model_over_two_processes_starts_exactly_the_schedule_of_one(self, database_url):
        rate, duration = 200.0, 1.0
        result = await run_load_async(
            config(
                database_url,
                shape=Open(rate=rate),
                duration_s=duration,
                workers=2,
                inventory=100_000,
                per_user_limit=100_000,
            )
        )
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        assert summary["workers"] == 2
        # One common time base: the merged scheduled starts are the one-process schedule, offset by offset.
        starts_ns = np.sort(np.round(records["start_s"].to_numpy() * 1e9).astype(np.int64))
        assert np.array_equal(starts_ns, schedule(rate, duration))
        # Worker k started the scheduled orders k, k + 2, ...: they alternate.
        ordered = records.sort_values("start_s")["worker"].to_numpy()
        assert set(ordered[::2]) == {0}
        assert set(ordered[1::2]) == {1}
        # Every request kept, and the percentiles are those of all of them.
        assert summary["requests"] == len(records) == summary["meta"]["started"]
        assert summary["latency_ms"]["p95"] == pytest.approx(np.percentile(records["latency_ms"], 95))
        assert summary["orders"] == summary["audit"]["orders"]
        assert len(summary["client_cpu_percent_by_worker"]) == 2
        assert all(cpu > 0 for cpu in summary["client_cpu_percent_by_worker"])
        assert summary["client_cpu_percent"] == pytest.approx(sum(summary["client_cpu_percent_by_worker"]))
        assert spawned_children() == []

    async def test_closed_model_workers_contend_for_the_row_and_the_audit_counts_every_order(self, database_url):
        closed = Closed(vus=4, think_ms=0)
        result = await run_load_async(
            config(database_url, shape=closed, duration_s=1.0, workers=2, users=40, inventory=30, per_user_limit=1)
        )
        summary, records = result.summary, result.records
        assert result.ok, summary["meta"]["audit_problems"]
        # The sale sold out exactly once across both processes: every order a worker was told of is in the database.
        assert summary["audit"]["orders"] == 30 == summary["audit"]["acknowledged"]
        assert (records["outcome"] == "created").sum() == 30
        # Both processes ran at the same time: each one's requests span the other's.
        spans = records.groupby("worker")["start_s"].agg(["min", "max"])
        assert list(spans.index) == [0, 1]
        assert spans["min"].max() < spans["max"].min()
        # The VUs of both took the lock: every request of the pessimistic flow is one lock hold, counted per process.
        counters = summary["meta"]["strategy_counters"]
        assert counters["lock_holds"] == summary["meta"]["started"] - summary["meta"]["interrupted"]
        assert summary["meta"]["lock_hold_ms"] > 0
        assert summary["meta"]["pinned_connections"] is True
        assert spawned_children() == []

    async def test_a_worker_that_cannot_start_fails_the_run_with_its_reason(self, database_url):
        nobody = f"http://127.0.0.1:{free_port()}"
        with pytest.raises(ChildFailed, match=r"load worker \d did not start: URLError: .*Connection refused"):
            await run_load_async(
                LoadConfig(
                    target="http",
                    base_url=nobody,
                    database_url=database_url,
                    shape=Closed(vus=2),
                    duration_s=1,
                    workers=2,
                )
            )
        assert spawned_children() == []
