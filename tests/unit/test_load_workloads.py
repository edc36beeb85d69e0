"""The workload models on small in-process targets: what the schedule is, and what the clock can and cannot show.

Bounds only, never timings: every assertion holds however loaded the machine is.
"""

import asyncio
import contextlib
import time

import numpy as np
import pytest

from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.workloads import Closed, Open, run_closed, run_open, schedule, shared

CREATED = (Outcomes().id("created"), 0)


class SleepTarget:
    """Answers every order after `latency_s`, tracking how many are in flight and which users were picked."""

    def __init__(self, latency_s=0.0):
        self.latency_s = latency_s
        self.inflight = 0
        self.max_inflight = 0
        self.picked = []

    async def order(self, user):
        self.picked.append(user)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(self.latency_s)
        finally:
            self.inflight -= 1
        return CREATED

    def session(self):
        return shared(self.order)


class TestSchedule:
    def test_evenly_spaced_from_zero_to_before_the_end(self):
        assert schedule(4, 1.0).tolist() == [0, 250_000_000, 500_000_000, 750_000_000]

    def test_fractional_intervals(self):
        assert schedule(3, 1.0).tolist() == [0, 333_333_333, 666_666_666]
        assert len(schedule(91.3, 10.0)) == 913

    def test_rejects_a_rate_that_is_not_positive(self):
        with pytest.raises(ValueError, match="rate"):
            Open(rate=0)


class TestClosedModel:
    async def test_rps_is_bounded_by_think_time_and_latency(self):
        """Each VU waits for its answer and then pauses, so RPS <= vus / (think + latency)."""
        target, records = SleepTarget(latency_s=0.01), RecordBuffer()
        vus, think_s, duration_s = 4, 0.04, 1.0
        await run_closed(Closed(vus=vus, think_s=think_s), target.session, records, users=10, duration_s=duration_s)
        latency_s = np.frombuffer(records.latency_ns, dtype=np.int64).mean() / 1e9
        # + vus / duration: each VU's last iteration may start just before the end
        bound = vus / (think_s + latency_s) + vus / duration_s
        assert 0 < len(records) / duration_s <= bound
        assert target.max_inflight <= vus

    async def test_each_vu_has_one_request_in_flight(self):
        target, records = SleepTarget(latency_s=0.005), RecordBuffer()
        await run_closed(Closed(vus=3, think_s=0), target.session, records, users=5, duration_s=0.3)
        assert target.max_inflight == 3

    async def test_a_seed_replays_the_same_users(self):
        picks = []
        for _ in range(2):
            target = SleepTarget()
            await run_closed(Closed(vus=1, think_s=0.01), target.session, RecordBuffer(), users=1000, duration_s=0.2)
            picks.append(target.picked)
        shortest = min(len(p) for p in picks)
        assert shortest > 1
        assert picks[0][:shortest] == picks[1][:shortest]
        assert all(0 <= user < 1000 for user in picks[0])

    async def test_requests_still_running_after_the_grace_period_are_interrupted(self):
        target, records = SleepTarget(latency_s=30), RecordBuffer()
        stats = await run_closed(
            Closed(vus=2, think_s=0), target.session, records, users=1, duration_s=0.05, grace_s=0.05
        )
        assert stats.interrupted == 2
        assert len(records) == 0

    async def test_each_vu_gets_its_own_session(self):
        opened = []

        @contextlib.asynccontextmanager
        async def session():
            opened.append(object())
            yield SleepTarget(0.001).order

        await run_closed(Closed(vus=3, think_s=0), session, RecordBuffer(), users=1, duration_s=0.05)
        assert len(opened) == 3


class TestOpenModel:
    async def test_starts_follow_the_schedule(self):
        target, records = SleepTarget(latency_s=0.001), RecordBuffer()
        stats = await run_open(Open(rate=200), target.order, records, users=10, duration_s=0.5)
        assert stats.started == 100
        assert sorted(records.start_ns) == schedule(200, 0.5).tolist()
        assert stats.dropped_starts == 0

    async def test_a_stalled_client_shows_in_the_latencies(self):
        """No coordinated omission: requests due while the event loop was blocked count the wait as latency."""
        stall_s = 0.3
        stalled = []

        async def order(user):
            if not stalled:
                stalled.append(True)
                time.sleep(stall_s)  # noqa: ASYNC251 - blocks the whole event loop, as a stalled client would
            return CREATED

        records = RecordBuffer()
        stats = await run_open(Open(rate=100), order, records, users=1, duration_s=0.5)
        start = np.frombuffer(records.start_ns, dtype=np.int64)
        latency = np.frombuffer(records.latency_ns, dtype=np.int64)
        due_during_stall = (start > 0) & (start < stall_s * 1e9)
        assert due_during_stall.sum() >= 20
        # Each of them waited at least until the stall ended, measured from its scheduled start.
        assert np.all(latency[due_during_stall] >= stall_s * 1e9 - start[due_during_stall])
        assert stats.late_starts >= due_during_stall.sum() - 1
        assert len(records) == 50

    async def test_starts_beyond_the_in_flight_bound_are_dropped(self):
        target, records = SleepTarget(latency_s=0.2), RecordBuffer()
        stats = await run_open(Open(rate=100, max_inflight=5), target.order, records, users=1, duration_s=0.5)
        assert target.max_inflight <= 5
        assert stats.dropped_starts > 0
        assert stats.started + stats.dropped_starts == 50
        assert len(records) == stats.started
