"""The open model on the real clock: what the runner records against what the clock said.

The real `Alarm` is made late on purpose (`LateAlarm` wakes `LATE_NS` after each deadline and notes when it woke),
and the target notes when it was called and when it answered. Every check compares clock readings taken in a
known order (the wake-up, then the runner's send time, then the call; the answer, then the recorded end, then the
record), so none depends on how fast or how busy the machine is.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import ClassVar

import numpy as np
import pytest

from flashsale.load import LoadConfig, run_load_async, shapes, workloads
from flashsale.load.alarm import Alarm
from flashsale.load.outcomes import Outcomes
from flashsale.load.records import RecordBuffer
from flashsale.load.shapes import Open
from flashsale.load.workloads import LATE_AFTER_S, run_open

LATE_NS = 10_000_000  # twice LATE_AFTER_S: every start the late alarm releases on its own counts as late
LEAD_NS = 50_000_000  # the origin lies this far ahead, so that the first start waits for the alarm too
CREATED = Outcomes().id("created")
clock = time.perf_counter_ns


class LateAlarm(Alarm):
    """The real alarm, woken `LATE_NS` after every deadline; `woken` holds (deadline, when it woke) pairs."""

    woken: ClassVar[list[tuple[int, int]]] = []  # the fixture gives each test its own

    async def at(self, deadline_ns: int) -> None:
        await super().at(deadline_ns + LATE_NS)
        self.woken.append((deadline_ns, clock()))


@pytest.fixture
def late_alarm(monkeypatch):
    woken: ClassVar[list[tuple[int, int]]] = []  # the fixture gives each test its own
    monkeypatch.setattr(LateAlarm, "woken", woken)
    monkeypatch.setattr(workloads, "Alarm", LateAlarm)
    return woken


class ObservedTarget:
    """Answers at once (after one turn of the loop), noting for each call the last wake-up before it, when it was
    called and when it answered; the call's number comes back as its status, to find its record."""

    def __init__(self, woken: list[tuple[int, int]]) -> None:
        self.woken = woken
        self.calls: dict[int, tuple[int | None, int, int]] = {}
        self._numbers = itertools.count()

    async def order(self, user: int) -> tuple[int, int]:
        number = next(self._numbers)
        called = clock()
        last_wake = self.woken[-1][1] if self.woken else None
        await asyncio.sleep(0)
        self.calls[number] = (last_wake, called, clock())
        return CREATED, number


class StampedRecords(RecordBuffer):
    """Records that also note when each was added."""

    __slots__ = ("added",)

    def __init__(self) -> None:
        super().__init__()
        self.added: list[int] = []

    def add(self, *args, **kwargs) -> None:
        self.added.append(clock())
        super().add(*args, **kwargs)


def column(values) -> np.ndarray:
    return np.frombuffer(values, dtype=np.int64)


class TestLateAlarm:
    async def test_each_record_says_when_its_request_was_sent_and_its_latency_runs_from_the_schedule(self, late_alarm):
        target, records = ObservedTarget(late_alarm), StampedRecords()
        origin = clock() + LEAD_NS
        stats = await run_open(Open(rate=50), target.order, records, users=1, duration_s=0.3, origin_ns=origin)

        start, latency, sent = column(records.start_ns), column(records.latency_ns), column(records.sent_ns)
        assert sorted(start.tolist()) == shapes.schedule(50, 0.3).tolist()
        assert len(target.calls) == len(records) == stats.started == 15
        for i, number in enumerate(records.status):
            last_wake, called, answered = target.calls[number]
            # sent after the wake-up that released it, and before the target was called
            assert last_wake is None or last_wake - origin <= sent[i]
            assert sent[i] <= called - origin
            # the latency runs from the scheduled start to what the clock said when the answer came
            end = start[i] + latency[i]
            assert answered - origin <= end <= records.added[i] - origin
        # Each start the alarm was set for went out after the alarm woke, LATE_NS after it: that much late at least.
        by_start = dict(zip(start.tolist(), (sent - start).tolist(), strict=True))
        assert late_alarm, "the alarm never woke"
        for deadline, _ in late_alarm:
            assert by_start[deadline - origin] >= LATE_NS
        assert stats.late_starts == int(((sent - start) > LATE_AFTER_S * 1e9).sum()) >= len(late_alarm)

    async def test_the_real_alarm_never_wakes_before_its_deadline(self):
        """It hands the loop over a little early and spins out the rest on the clock (a short wait, whole)."""
        async with Alarm() as alarm:
            for wait_ns in [50_000, 20_000_000] * 5:
                deadline = clock() + wait_ns
                await alarm.at(deadline)
                assert clock() >= deadline


class TestThroughTheRunner:
    async def test_the_records_and_the_summary_show_how_late_each_request_was_sent(self, database_url, late_alarm):
        config = LoadConfig(
            database_url=database_url, target="db", shape=Open(rate=40), duration_s=0.5, workers=1, users=20,
            inventory=1000, per_user_limit=1000,
        )  # fmt: skip
        result = await run_load_async(config)
        records, meta = result.records, result.summary["meta"]
        assert result.ok, meta["audit_problems"]
        lag = records.loc[~records["warmup"], "send_lag_ms"]
        assert len(lag) == result.summary["requests"] == 20
        assert late_alarm, "the alarm never woke"
        assert lag.max() >= LATE_NS / 1e6  # a start the late alarm was set for
        assert (lag >= 0).all()
        assert meta["send_lag_ms"]["max"] == lag.max()
        assert meta["send_lag_ms"]["p50"] == pytest.approx(np.percentile(lag, 50))
        assert meta["late_starts"] == int((lag > LATE_AFTER_S * 1e3).sum())
        # a request's latency includes how late it was sent
        assert (records["latency_ms"] >= records["send_lag_ms"]).all()
        assert "send lag" in result.text()
