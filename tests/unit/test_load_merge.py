"""Merging what several load-generating processes measured: every record kept, outcome ids re-interned into one
table, percentiles over all the requests; and how a run is split over processes."""

import asyncio
import json
import time
from uuid import UUID

import numpy as np
import pytest

from flashsale.load import LoadConfig, RecordBuffer, schedule
from flashsale.load.config import default_workers
from flashsale.load.locust.orders import WorkerOrders
from flashsale.load.merge import WorkerResult, merge
from flashsale.load.outcomes import Outcomes
from flashsale.load.sale import Sale
from flashsale.load.shapes import Closed, Open
from flashsale.load.summary import latency_stats
from flashsale.load.workers import WorkerPlan
from flashsale.load.workloads import WorkloadStats, run_open

SALE = Sale(flash_sale_id=__import__("uuid").UUID(int=1), users=10, inventory=5, per_user_limit=1)


def result(worker, rows, *, outcomes=None, **fields):
    """A WorkerResult from (start_ns, latency_ns, outcome name, status) rows."""
    outcomes = outcomes or Outcomes()
    records = RecordBuffer()
    for start, latency, name, status in rows:
        records.add(start, latency, outcomes.id(name), status)
    return WorkerResult.from_buffer(worker, records, outcomes, **fields)


class TestMerge:
    def test_every_record_is_kept_with_its_outcome_name_and_worker(self):
        # Each worker interns its own error class first seen: the same id means different names in each.
        first = result(0, [(10, 1_000_000, "created", 0), (30, 3_000_000, "PoolTimeout", 0)])
        second = result(1, [(20, 2_000_000, "ClientConnectorError", 0), (40, 4_000_000, "sold_out", 0)])
        assert first.outcome_names[-1] != second.outcome_names[-1]
        assert first.outcome[1] == second.outcome[0]  # one id, two names

        outcomes = Outcomes()
        merged = merge([second, first], outcomes)  # arrival order does not matter
        frame = merged.records.to_frame(outcomes)
        assert list(merged.records.start_ns) == [10, 30, 20, 40]
        assert list(frame["start_s"]) == pytest.approx([10e-9, 30e-9, 20e-9, 40e-9])
        assert list(frame["outcome"].astype(str)) == ["created", "PoolTimeout", "ClientConnectorError", "sold_out"]
        assert list(merged.worker) == [0, 0, 1, 1]

    def test_percentiles_are_those_of_all_the_requests_not_an_average_of_workers(self):
        rng = np.random.default_rng(7)
        fast = rng.exponential(1.0, 900)
        slow = rng.exponential(20.0, 100)
        workers = [
            result(k, [(i, round(ms * 1e6), "created", 201) for i, ms in enumerate(latencies)])
            for k, latencies in enumerate((fast, slow))
        ]
        outcomes = Outcomes()
        frame = merge(workers, outcomes).records.to_frame(outcomes)
        together = np.concatenate([np.round(fast * 1e6), np.round(slow * 1e6)]) / 1e6
        stats = latency_stats(frame["latency_ms"].to_numpy())
        for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert stats[key] == pytest.approx(np.percentile(together, q))
        averaged = (np.percentile(fast, 95) + np.percentile(slow, 95)) / 2
        assert stats["p95"] != pytest.approx(averaged, rel=0.05)

    def test_counters_statistics_and_keys_add_up(self):
        a = result(
            0,
            [(1, 1, "created", 0)],
            acknowledged=b"a" * 16,
            stats=WorkloadStats(started=3, late_starts=1, dropped_starts=0, interrupted=1, elapsed_s=2.0),
            keys=3,
            retries=1,
            disagreements=0,
            acknowledged_keys=["k0-0"],
            acknowledged_key_orders=[b"a" * 16],
            strategy_counters={"lock_holds": 2, "lock_hold_ns": 10},
            cpu_s=0.5,
            wall_s=2.0,
        )
        b = result(
            1,
            [(2, 2, "created", 0)],
            acknowledged=b"b" * 16,
            stats=WorkloadStats(started=4, late_starts=0, dropped_starts=2, interrupted=0, elapsed_s=2.5),
            keys=5,
            retries=2,
            disagreements=1,
            acknowledged_keys=["k1-0"],
            acknowledged_key_orders=[b"b" * 16],
            strategy_counters={"lock_holds": 3, "lock_hold_ns": 20},
            cpu_s=1.0,
            wall_s=2.0,
        )
        merged = merge([a, b], Outcomes())
        assert merged.acknowledged == b"a" * 16 + b"b" * 16
        assert (merged.stats.started, merged.stats.late_starts, merged.stats.dropped_starts) == (7, 1, 2)
        assert (merged.stats.interrupted, merged.stats.elapsed_s) == (1, 2.5)
        assert (merged.keys, merged.retries, merged.disagreements) == (8, 3, 1)
        assert merged.acknowledged_keys[0] == ["k0-0", "k1-0"]
        assert [u.bytes for u in merged.acknowledged_keys[1]] == [b"a" * 16, b"b" * 16]
        assert merged.strategy_counters == {"lock_holds": 5, "lock_hold_ns": 30}
        assert merged.cpu_percent == [25.0, 50.0]

    def test_asynchronous_orders_keep_their_ids_and_settlements_their_names_across_workers(self):
        """Two processes' recorders (the Locust worker's `WorkerOrders`), each interning the error classes it meets
        in its own order: the merge keeps every accepted id, in worker order, and re-labels every settlement with
        the name its own worker gave it, although one id stands for different names in each."""
        sale, users = UUID(int=1), [str(UUID(int=2))]
        ids = [UUID(int=100 + i) for i in range(4)]
        first, second = WorkerOrders(users, sale), WorkerOrders(users, sale)
        for orders in (first, second):
            orders.begin(1_000)
        first.failed(1_010, 1_020, ConnectionResetError())  # interned first by worker 0 only
        for n, (orders, order_id) in enumerate(zip((first, first, second, second), ids, strict=True)):
            body = json.dumps({"order_id": str(order_id), "status": "pending"}).encode()
            assert orders.answered(orders.next(0), 1_100 + n, 1_150 + n, 202, body, False) == "accepted"
        first.polls, second.polls = 3, 4
        settled = [
            (first, ids[0], {"status": "completed"}, None, "created"),
            (first, ids[1], None, "TimeoutError", "TimeoutError"),
            (second, ids[2], None, "ServerDisconnected", "ServerDisconnected"),
            (second, ids[3], {"status": "failed", "reason": "user_not_found"}, None, "not_found"),
        ]
        for n, (orders, order_id, status, error, name) in enumerate(settled):
            assert orders.settled(order_id.bytes, 1_100 + n, 2_000 + 10 * n, status, error) == name
        a, b = first.result(0), second.result(1)
        # one settlement id, two names: the merge must translate, not copy
        shared_id = b.settle_outcome[0]
        assert (b.outcome_names[shared_id], a.outcome_names[shared_id]) == (
            "ServerDisconnected",
            "ConnectionResetError",
        )

        outcomes = Outcomes()
        merged = merge([b, a], outcomes)
        assert merged.accepted_ids == ids
        assert merged.acknowledged == ids[0].bytes  # the order confirmed at its settlement
        assert merged.polls == 7
        frame = merged.settlements.to_frame(outcomes)
        assert list(frame["outcome"].astype(str)) == [name for *_, name in settled]
        assert list(merged.settlements.start_ns) == [100, 101, 102, 103]
        assert list(merged.settlements.latency_ns) == [900, 909, 918, 927]
        assert (
            list(merged.records.to_frame(outcomes)["outcome"].astype(str))
            == ["ConnectionResetError"] + ["accepted"] * 4
        )

    def test_a_failed_worker_fails_the_merge_with_its_message(self):
        failed = result(1, [], error="ConnectionRefusedError: nobody there")
        with pytest.raises(RuntimeError, match="load worker 1 failed: ConnectionRefusedError: nobody there"):
            merge([result(0, [(1, 1, "created", 0)]), failed], Outcomes())


class TestDefaultWorkers:
    @pytest.mark.parametrize(
        ("cores", "shape", "expected"),
        [
            (2, Closed(vus=128), 1),  # a quarter of 2 cores is less than one: the database needs them
            (16, Closed(vus=8), 1),  # few users: one event loop serves them
            (16, Closed(vus=64), 4),  # a quarter of the cores
            (64, Closed(vus=64), 4),  # one process per 16 VUs
            (64, Closed(vus=1000), 16),
            (64, Open(rate=3500.0), 4),  # open model: one process per 1000 orders/s
        ],
    )
    def test_one_process_per_load_share_at_most_a_quarter_of_the_cores(self, cores, shape, expected):
        assert default_workers(LoadConfig(shape=shape), cores=cores) == expected

    def test_an_explicit_count_wins(self):
        assert LoadConfig(shape=Closed(vus=4), workers=3).worker_count == 3
        with pytest.raises(ValueError, match="workers must be at least 1"):
            LoadConfig(workers=0)


class TestPlans:
    def test_virtual_users_are_dealt_out_and_keep_their_numbers(self):
        config = LoadConfig(shape=Closed(vus=10), workers=3)
        shares = [WorkerPlan(config, "url", SALE, k, 3).vu_ids for k in range(3)]
        assert sorted(v for share in shares for v in share) == list(range(10))
        assert [len(s) for s in shares] == [4, 3, 3]
        # one connection a VU in each worker, so that each can pin them
        assert [WorkerPlan(config, "url", SALE, k, 3).pool_size for k in range(3)] == [4, 3, 3]

    async def test_open_model_shares_make_exactly_the_schedule_of_one(self):
        """Three shares run side by side from one origin start, together, at exactly the scheduled offsets."""
        workload = Open(rate=300.0)

        async def order(user):
            return 0, 0

        buffers = [RecordBuffer() for _ in range(3)]
        origin = time.perf_counter_ns()
        await asyncio.gather(
            *(
                run_open(workload, order, buffers[k], users=10, duration_s=0.3, origin_ns=origin, share=(k, 3))
                for k in range(3)
            )
        )
        starts = sorted(s for b in buffers for s in b.start_ns)
        assert starts == list(schedule(300.0, 0.3))
        assert all(len(b) == 30 for b in buffers)

    def test_a_share_must_name_one_of_n(self):
        async def order(user):
            return 0, 0

        with pytest.raises(ValueError, match="share must be"):
            asyncio.run(run_open(Open(rate=10.0), order, RecordBuffer(), users=1, duration_s=0.1, share=(3, 3)))
