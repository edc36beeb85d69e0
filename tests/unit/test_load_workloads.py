"""The workload models on small in-process targets with known service times, on a virtual clock
(`VirtualTimeLoop`): what the schedule is, and exactly what each model's latencies show, a stall included.

No assertion depends on the machine: a target's `asyncio.sleep(0.01)` takes exactly 10 ms of virtual time.
"""

import contextlib

import numpy as np
import pytest

from flashsale.load import alarm, workloads
from flashsale.load.alarm import LoopTimer
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.shapes import Closed, Open, schedule
from flashsale.load.workloads import LATE_AFTER_S, run_closed, run_open, shared
from tests.unit.virtual_time import VirtualTimeLoop

CREATED = (Outcomes().id("created"), 0)
MS = 1_000_000  # ns


@pytest.fixture
def loop(monkeypatch):
    """Runs a workload on virtual time: the workloads' clock is the loop's."""
    virtual = VirtualTimeLoop()
    monkeypatch.setattr(workloads, "time", virtual.time_module)
    monkeypatch.setattr(alarm, "time", virtual.time_module)  # LoopTimer's clock
    # The open model's Alarm wakes the loop from a thread sleeping in real time: on virtual time, the loop's timer.
    monkeypatch.setattr(workloads, "Alarm", LoopTimer)
    yield virtual
    virtual.close()


class SleepTarget:
    """Answers every order after `latency_s` (its service time), tracking how many are in flight and which users
    were picked; with `stall_s`, its first order first blocks the whole client for that long."""

    def __init__(self, loop, latency_s=0.0, stall_s=0.0):
        self.loop = loop
        self.latency_s = latency_s
        self.stall_s = stall_s
        self.inflight = 0
        self.max_inflight = 0
        self.picked = []

    async def order(self, user):
        if self.stall_s and not self.picked:
            self.loop.stall(self.stall_s)
        self.picked.append(user)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await workloads.asyncio.sleep(self.latency_s)
        finally:
            self.inflight -= 1
        return CREATED

    def session(self):
        return shared(self.order)


def columns(records):
    return np.frombuffer(records.start_ns, dtype=np.int64), np.frombuffer(records.latency_ns, dtype=np.int64)


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
    def test_latency_is_the_service_time_and_each_vu_paces_itself(self, loop):
        """Each VU places an order (10 ms), pauses (40 ms) and goes again: a start every 50 ms, 20 in a second."""
        target, records = SleepTarget(loop, latency_s=0.01), RecordBuffer()
        loop.run_until_complete(
            run_closed(Closed(vus=4, think_ms=40), target.session, records, users=10, duration_s=1.0)
        )
        start, latency = columns(records)
        assert latency.tolist() == [10 * MS] * 80
        assert sorted(start.tolist()) == sorted(list(range(0, 1000 * MS, 50 * MS)) * 4)
        assert target.max_inflight == 4

    def test_users_that_start_together_stay_in_step_unless_their_pauses_jitter(self, loop):
        """Three VUs that start together: with exact pauses every order starts at the same instant as two others;
        with a jitter of 0.5 they drift apart."""
        starts = {}
        for jitter in (0.0, 0.5):
            target, records = SleepTarget(loop, latency_s=0.01), RecordBuffer()
            workload = Closed(vus=3, think_ms=40, think_jitter=jitter)
            loop.run_until_complete(run_closed(workload, target.session, records, users=50, duration_s=2.0))
            starts[jitter] = columns(records)[0].tolist()
        assert len(set(starts[0.0])) * 3 == len(starts[0.0])  # in step: three orders at each instant
        assert len(set(starts[0.5])) > len(starts[0.5]) * 0.9  # apart

    def test_a_jittered_pause_stays_within_its_bounds_around_the_same_mean_and_picks_the_same_users(self, loop):
        picked, gaps = {}, {}
        for jitter in (0.0, 0.5):
            target, records = SleepTarget(loop, latency_s=0.01), RecordBuffer()
            workload = Closed(vus=1, think_ms=40, think_jitter=jitter)
            loop.run_until_complete(run_closed(workload, target.session, records, users=1000, duration_s=5.0))
            gaps[jitter] = np.diff(columns(records)[0]) - 10 * MS  # the pauses between one order and the next
            picked[jitter] = target.picked
        assert set(gaps[0.0].tolist()) == {40 * MS}
        assert gaps[0.5].min() >= 20 * MS
        assert gaps[0.5].max() <= 60 * MS
        assert abs(gaps[0.5].mean() - 40 * MS) < 3 * MS
        assert gaps[0.5].std() > 8 * MS  # uniform over 40 ms: 11.5 ms
        shared = min(len(picked[0.0]), len(picked[0.5]))
        assert picked[0.5][:shared] == picked[0.0][:shared]

    def test_a_jitter_outside_0_to_1_is_refused(self):
        with pytest.raises(ValueError, match=r"think jitter must be between 0 and 1, got 1\.5"):
            Closed(vus=1, think_jitter=1.5)

    def test_a_stall_is_charged_only_to_the_request_it_hit(self, loop):
        """Coordinated omission: a closed-model VU does not start the requests it would have sent while stalled,
        so the stall shows once (in the request it hit) and as missing requests, never in the others' latency."""
        target, records = SleepTarget(loop, latency_s=0.01, stall_s=0.3), RecordBuffer()
        loop.run_until_complete(run_closed(Closed(vus=1, think_ms=0), target.session, records, users=1, duration_s=1.0))
        start, latency = columns(records)
        assert latency.tolist() == [310 * MS] + [10 * MS] * 69
        assert start.tolist() == [0, *range(310 * MS, 1000 * MS, 10 * MS)]

    def test_each_vu_has_one_request_in_flight(self, loop):
        target, records = SleepTarget(loop, latency_s=0.005), RecordBuffer()
        loop.run_until_complete(run_closed(Closed(vus=3, think_ms=0), target.session, records, users=5, duration_s=0.3))
        assert target.max_inflight == 3
        assert len(records) == 3 * 60

    def test_a_seed_replays_the_same_users(self, loop):
        picks = []
        for _ in range(2):
            target = SleepTarget(loop)
            loop.run_until_complete(
                run_closed(Closed(vus=1, think_ms=10), target.session, RecordBuffer(), users=1000, duration_s=0.2)
            )
            picks.append(target.picked)
        assert len(picks[0]) == 20
        assert picks[0] == picks[1]
        assert all(0 <= user < 1000 for user in picks[0])

    def test_requests_still_running_after_the_grace_period_are_interrupted(self, loop):
        target, records = SleepTarget(loop, latency_s=30), RecordBuffer()
        stats = loop.run_until_complete(
            run_closed(Closed(vus=2, think_ms=0), target.session, records, users=1, duration_s=0.05, grace_s=0.05)
        )
        assert stats.interrupted == 2
        assert len(records) == 0
        assert stats.elapsed_s == pytest.approx(0.1)

    def test_each_vu_gets_its_own_session(self, loop):
        opened = []

        @contextlib.asynccontextmanager
        async def session():
            opened.append(object())
            yield SleepTarget(loop, 0.001).order

        loop.run_until_complete(
            run_closed(Closed(vus=3, think_ms=0), session, RecordBuffer(), users=1, duration_s=0.05)
        )
        assert len(opened) == 3


class HintedOrders:
    """A virtual user's order function that honours `Retry-After`: every order answered after `latency_s` and
    refused with a hint of `hint_s` (the wait it asks for, as `retry_after_s()` tells the workload)."""

    def __init__(self, latency_s, hint_s):
        self.latency_s, self.hint_s = latency_s, hint_s

    async def __call__(self, user):
        await workloads.asyncio.sleep(self.latency_s)
        return REFUSED

    def retry_after_s(self):
        return self.hint_s


REFUSED = (Outcomes().id("rate_limited"), 429)


class TestRetryAfter:
    """A virtual user whose order function reads `Retry-After` pauses the longer of the hint and its think time."""

    def run(self, loop, *, hint_s, think_ms, vus=2, duration_s=1.0):
        records = RecordBuffer()

        @contextlib.asynccontextmanager
        async def session():
            yield HintedOrders(0.01, hint_s)

        stats = loop.run_until_complete(
            run_closed(Closed(vus=vus, think_ms=think_ms), session, records, users=5, duration_s=duration_s)
        )
        return stats, columns(records)[0]

    def test_a_hint_longer_than_the_think_time_is_the_pause(self, loop):
        """10 ms an order, 100 ms asked: a start every 110 ms, 10 a VU in a second; every refusal a wait, the last
        one cut to nothing by the end of the run."""
        stats, start = self.run(loop, hint_s=0.1, think_ms=0)
        assert sorted(start.tolist()) == sorted(list(range(0, 1000 * MS, 110 * MS)) * 2)
        assert stats.retry_after_waits == len(start) == 20
        assert stats.retry_after_wait_s == pytest.approx(2 * 9 * 0.1)

    def test_a_think_time_longer_than_the_hint_stays_and_counts_no_wait(self, loop):
        stats, start = self.run(loop, hint_s=0.02, think_ms=40)
        assert sorted(start.tolist()) == sorted(list(range(0, 1000 * MS, 50 * MS)) * 2)
        assert (stats.retry_after_waits, stats.retry_after_wait_s) == (0, 0.0)

    def test_no_wait_is_asked_without_a_hint(self, loop):
        stats, start = self.run(loop, hint_s=0.0, think_ms=0, vus=1, duration_s=0.1)
        assert len(start) == 10
        assert stats.retry_after_waits == 0

    def test_a_huge_hint_waits_until_the_end_of_the_run_and_no_longer(self, loop):
        stats, start = self.run(loop, hint_s=float("inf"), think_ms=0, duration_s=1.0)
        assert start.tolist() == [0, 0]
        assert stats.retry_after_waits == 2
        assert stats.retry_after_wait_s == pytest.approx(2 * 0.99)
        assert stats.elapsed_s == pytest.approx(1.0)


class TestOpenModel:
    def test_starts_follow_the_schedule_and_latency_is_the_service_time(self, loop):
        target, records = SleepTarget(loop, latency_s=0.003), RecordBuffer()
        stats = loop.run_until_complete(run_open(Open(rate=200), target.order, records, users=10, duration_s=0.5))
        start, latency = columns(records)
        assert stats.started == 100
        assert sorted(start.tolist()) == schedule(200, 0.5).tolist()
        assert latency.tolist() == [3 * MS] * 100
        assert (stats.dropped_starts, stats.late_starts) == (0, 0)

    def test_a_stall_is_charged_to_every_request_scheduled_behind_it(self, loop):
        """No coordinated omission: the first request blocks the client for 300 ms; the 30 requests due meanwhile
        start when it ends and finish 5 ms later, and each one's latency runs from its *scheduled* start."""
        target, records = SleepTarget(loop, latency_s=0.005, stall_s=0.3), RecordBuffer()
        stats = loop.run_until_complete(run_open(Open(rate=100), target.order, records, users=1, duration_s=0.5))
        start, latency = columns(records)
        order = np.argsort(start)
        start, latency = start[order], latency[order]
        assert start.tolist() == schedule(100, 0.5).tolist()
        expected = np.maximum(305 * MS, start + 5 * MS) - start  # 305 ms, 295 ms, ..., 5 ms, then 5 ms
        assert latency.tolist() == expected.tolist()
        assert latency[:3].tolist() == [305 * MS, 295 * MS, 285 * MS]
        # Started more than LATE_AFTER_S after their time: the 29 due from 10 to 290 ms.
        assert stats.late_starts == int((300 * MS - start[1:31] > LATE_AFTER_S * 1e9).sum()) == 29
        assert len(records) == 50

    def test_starts_beyond_the_in_flight_bound_are_dropped(self, loop):
        target, records = SleepTarget(loop, latency_s=0.195), RecordBuffer()
        stats = loop.run_until_complete(
            run_open(Open(rate=100, max_inflight=5), target.order, records, users=1, duration_s=0.5)
        )
        assert target.max_inflight == 5
        # Five in flight from 0 to 40 ms, each for 195 ms: the starts due from 50 to 190 ms find the bound reached.
        start, _ = columns(records)
        assert sorted(start.tolist())[:6] == [0, 10 * MS, 20 * MS, 30 * MS, 40 * MS, 200 * MS]
        assert stats.dropped_starts >= 15
        assert stats.started + stats.dropped_starts == 50
        assert len(records) == stats.started
