"""The load runner against the real database: the db target end to end, the lock sampler, the audit, the
Parquet files, and the notebook entry point. Runs are one or two seconds; assertions are bounds, not timings."""

import asyncio

import pytest

from flashsale.db import connection
from flashsale.load import Closed, LoadConfig, LoadResult, Open, run_load, run_load_async, schedule
from flashsale.load.contention import LockSampler
from flashsale.load.summary import SUMMARY_KEYS
from flashsale.load.transactions import TransactionCounter
from tests.waiting import until_async


def config(database_url, **changes):
    return LoadConfig(database_url=database_url, **changes)


class TestDbTargetClosedModel:
    async def test_sells_out_then_refuses_and_the_audit_agrees(self, database_url):
        result = await run_load_async(
            config(
                database_url, shape=Closed(vus=4, think_ms=0), duration_s=1.0, users=10, inventory=20, per_user_limit=5
            )
        )
        summary = result.summary
        assert tuple(summary) == SUMMARY_KEYS
        assert result.ok, summary["meta"]["audit_problems"]
        # Every order the runner saw created is one the database holds, and the sale sold out.
        assert (result.records["outcome"] == "created").sum() == summary["audit"]["orders"] == 20
        assert summary["audit"]["remaining"] == 0
        assert summary["outcomes"]["sold_out"] > 0
        assert set(summary["outcomes"]) <= {"created", "sold_out", "per_user_limit_exceeded"}
        assert summary["requests"] == len(result.records)
        assert summary["meta"]["pinned_connections"] is True
        assert summary["meta"]["event_loop"] in {"uvloop", "asyncio"}
        assert summary["client_cpu_percent"] > 0

    async def test_rps_is_bounded_by_think_time_and_latency(self, database_url):
        vus, think_ms, duration_s = 3, 50.0, 1.5
        result = await run_load_async(
            config(
                database_url,
                shape=Closed(vus=vus, think_ms=think_ms),
                duration_s=duration_s,
                inventory=100_000,
                per_user_limit=100_000,
            )
        )
        summary = result.summary
        bound = vus / (think_ms / 1000 + summary["latency_ms"]["avg"] / 1000) * 1.05 + vus / duration_s
        assert 0 < summary["rps"] <= bound
        assert summary["orders"] == summary["requests"]  # nothing sells out

    async def test_warmup_is_recorded_but_left_out(self, database_url):
        closed = Closed(vus=2, think_ms=20)
        result = await run_load_async(
            config(database_url, shape=closed, duration_s=0.6, warmup_s=0.4, inventory=1000, per_user_limit=50)
        )
        records, summary = result.records, result.summary
        warm = records["warmup"]
        assert warm.any()
        assert (~warm).any()
        # The summary is that of the measured requests only: their count, outcomes and latency.
        measured = records[~warm]
        assert summary["requests"] == len(measured)
        assert summary["outcomes"] == measured["outcome"].astype(str).value_counts().to_dict()
        assert summary["latency_ms"]["avg"] == pytest.approx(measured["latency_ms"].mean())
        assert summary["latency_ms"]["max"] == pytest.approx(measured["latency_ms"].max())
        assert summary["meta"]["warmup_s"] == 0.4


class TestPostgresTransactions:
    """The database's own count of transactions (pg_stat_database), read once every session of the run has exited."""

    async def test_each_order_of_the_naive_flow_is_a_transaction_at_least(self, database_url):
        result = await run_load_async(
            config(database_url, shape=Closed(vus=4, think_ms=0), duration_s=1.0, warmup_s=0.2, users=10, inventory=20)
        )
        pg = result.summary["meta"]["pg_transactions"]
        assert pg["requests"] == len(result.records)  # warmup included, as the count is
        assert pg["total"] >= pg["requests"]  # every request, placed or refused, ran its transaction
        assert pg["per_request"] == pytest.approx(pg["total"] / pg["requests"])

    async def test_refusals_of_the_stock_gate_never_reach_the_database(self, database_url, redis_url):
        result = await run_load_async(
            config(
                database_url, strategy="redis_gate", shape=Closed(vus=4, think_ms=0), duration_s=1.5, users=10,
                inventory=5, sample_interval_s=0.5,
            )
        )  # fmt: skip
        outcomes, pg = result.summary["outcomes"], result.summary["meta"]["pg_transactions"]
        assert outcomes["sold_out"] + outcomes.get("per_user_limit_exceeded", 0) > pg["total"]
        assert pg["per_request"] < 1

    async def test_waits_for_what_a_session_reports_only_as_it_exits(self, database_url):
        """A session publishes its counts at most once a second while it works, and all of them when it exits: the
        count waits for the sessions the run opened to exit, so it has them all."""
        counter = TransactionCounter(database_url)
        await counter.begin()
        await counter.mark()
        session = await connection.connect_async(database_url)
        for _ in range(20):
            await session.execute("SELECT 1")
        counting = asyncio.create_task(counter.count())
        await asyncio.sleep(0.3)  # the count is waiting when the session leaves (it waits however long it takes)
        await session.close()
        assert await counting >= 20


class TestDbTargetOpenModel:
    async def test_requests_follow_the_schedule(self, database_url):
        result = await run_load_async(config(database_url, shape=Open(rate=40), duration_s=1.0, inventory=10))
        meta = result.summary["meta"]
        assert result.summary["model"] == "open"
        assert meta["dropped_starts"] == 0
        assert meta["started"] == 40
        starts = sorted(round(s * 1e9) for s in result.records["start_s"])
        assert starts == pytest.approx(schedule(40, 1.0).tolist(), abs=1)
        assert result.summary["rps"] == pytest.approx(40.0)
        assert result.ok


class TestAudit:
    async def test_catches_an_oversell_injected_into_the_database(self, database_url, make_scenario, conn):
        made = await make_scenario(users=1, inventory=1, per_user_limit=1)
        user = (await (await conn.execute("SELECT id FROM users ORDER BY number LIMIT 1")).fetchone())[0]
        # Three confirmed units of a one-unit sale for its only user, behind the inventory row's back.
        for _ in range(3):
            await conn.execute(
                "INSERT INTO orders (user_id, flash_sale_id, quantity, status) VALUES (%s, %s, 1, 'CONFIRMED')",
                [user, made.flash_sale_id],
            )
        result = await run_load_async(
            config(database_url, reset=False, shape=Closed(vus=1, think_ms=10), duration_s=0.3)
        )
        audit = result.summary["audit"]
        assert not result.ok
        assert audit["ok"] is False
        assert audit["oversold"] == 2
        assert audit["limit_violations"] == 1
        assert result.summary["outcomes"] == {"per_user_limit_exceeded": result.summary["requests"]}
        assert result.summary["meta"]["flash_sale_id"] == str(made.flash_sale_id)
        assert result.summary["meta"]["warnings"][0].startswith("AUDIT FAILED")
        assert "FAILED" in result.text()


class TestLockSampler:
    async def test_counts_sessions_waiting_for_the_row(self, database_url, make_scenario):
        made = await make_scenario()
        lock = "SELECT 1 FROM flash_sales WHERE id = %s FOR UPDATE"
        holder = await connection.connect_async(database_url)
        waiters = [await connection.connect_async(database_url) for _ in range(2)]
        sampler = LockSampler(database_url)
        await sampler.start()
        try:
            await holder.execute("BEGIN")
            await holder.execute(lock, [made.flash_sale_id])
            blocked = [asyncio.create_task(w.execute(lock, [made.flash_sale_id])) for w in waiters]
            samples = []

            async def both_seen_waiting() -> bool:  # each sample is a fresh snapshot
                samples.append(await sampler.sample())
                return samples[-1][1] + samples[-1][2] == 2

            await until_async(both_seen_waiting, "both sessions seen waiting on the row")
            # The first waiter waits for the holder's transaction, the next one queues on the tuple lock.
            assert samples[-1][1:3] == (1, 1)
            await holder.execute("ROLLBACK")
            await asyncio.gather(*blocked)
        finally:
            timeline = await sampler.stop()
            for c in (holder, *waiters):
                await c.close()
        assert len(timeline) >= 1
        assert list(timeline.columns) == ["t_s", "tuple", "transactionid", "other_lock", "active"]

    async def test_a_contended_run_keeps_its_timeline(self, database_url):
        result = await run_load_async(
            config(
                database_url, shape=Closed(vus=8, think_ms=0), duration_s=1.0, inventory=100_000, per_user_limit=100_000
            )
        )
        timeline = result.lock_timeline
        assert len(timeline) >= 3
        assert timeline["t_s"].is_monotonic_increasing
        assert result.summary["lock_waiters_mean"] is not None
        # Eight buyers without a pause on one row: some queue, and never more than the seven not holding it.
        assert 0 < result.summary["lock_waiters_mean"] <= 8 - 1
        assert result.summary["meta"]["lock_samples"] >= 3


class TestResults:
    async def test_parquet_round_trip(self, database_url, tmp_path):
        result = await run_load_async(config(database_url, shape=Closed(vus=2, think_ms=10), duration_s=0.5))
        records_path, locks_path = result.to_parquet(tmp_path / "run.parquet")
        assert locks_path.name == "run.locks.parquet"
        back = LoadResult.read_parquet(records_path)
        assert back.summary["requests"] == result.summary["requests"]
        assert back.summary["latency_ms"] == pytest.approx(result.summary["latency_ms"])
        assert back.records["outcome"].astype(str).tolist() == result.records["outcome"].astype(str).tolist()
        assert len(back.lock_timeline) == len(result.lock_timeline)
        assert back.summary_frame().loc[0, "requests"] == result.summary["requests"]

    async def test_run_load_works_inside_a_running_event_loop(self, database_url):
        """As in a Jupyter kernel: the blocking call runs the load on its own loop in a worker thread."""
        result = run_load(config(database_url, shape=Closed(vus=1, think_ms=10), duration_s=0.3))
        assert result.summary["requests"] > 0
        assert result.ok

    def test_rejects_bad_settings(self):
        for bad in (
            {"target": "ftp"},
            {"shape": "closed"},
            {"duration_s": 0},
            {"strategy": "nope"},
            {"base_url": "http://x"},
        ):
            with pytest.raises(ValueError):  # noqa: PT011 - each setting has its own message
                LoadConfig(**bad)
        for shape, bad in ((Closed, {"vus": 0}), (Open, {"rate": -1})):  # refused by the shape itself
            with pytest.raises(ValueError):  # noqa: PT011
                shape(**bad)
