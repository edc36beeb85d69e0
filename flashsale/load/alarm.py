"""Waking the open model on time: `Alarm`, a thread that sleeps in nanoseconds and wakes the event loop at each
start (the loop's own timers count whole milliseconds), and `LoopTimer`, the same interface on the loop's timer
(for tests that step a fake clock, and as the comparison the `Alarm` exists to beat).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
import time


class Alarm:
    """Wakes an event loop at a `perf_counter_ns` instant to within a few microseconds.

    Event loop timers have a resolution of one millisecond (epoll's timeout and libuv's clock both count whole
    milliseconds), so `asyncio.sleep` wakes the open model up to a millisecond after a start is due: half a
    millisecond on average inside every latency it reports. Here a thread sleeps instead (`time.sleep` sleeps in
    nanoseconds; the thread's timer slack is set to 1 ns where Linux allows it) and wakes the loop through
    `call_soon_threadsafe` a little before the deadline (a thread's wake-up and the hand-over to the loop take 50 to
    100 µs on a virtual machine, more on an idle one whose cores sleep), and the loop waits out what is left on the
    clock. How early: `SPIN_SHARE` of the time it waits, at most `EARLY_NS`, so that the spinning costs at most that
    share of a core at any rate (at 150 starts a second 200 µs each, 3 %); a wait shorter than `HANDOFF_NS` is spun
    out whole (a process making more than 10,000 starts a second keeps its core busy anyway).
    """

    EARLY_NS = 200_000
    SPIN_SHARE = 0.05
    HANDOFF_NS = 100_000

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = False
        self._deadline = 0
        self._future: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def __aenter__(self) -> Alarm:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="flashsale-alarm", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def at(self, deadline_ns: int) -> None:
        assert self._loop is not None, "use the alarm inside `async with`"
        clock = time.perf_counter_ns
        wait = deadline_ns - clock()
        early = min(self.EARLY_NS, int(wait * self.SPIN_SHARE))
        if wait > self.HANDOFF_NS:  # shorter waits are spun out: the hand-over alone would overshoot them
            self._future = self._loop.create_future()
            self._deadline = deadline_ns - early
            self._wake.set()
            await self._future
        while clock() < deadline_ns:  # the last stretch on the clock
            pass

    def _run(self) -> None:
        _fine_timer_slack()
        clock, sleep, loop = time.perf_counter_ns, time.sleep, self._loop
        assert loop is not None
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            future, remaining = self._future, self._deadline - clock()
            if remaining > 0:
                sleep(remaining / 1e9)
            if future is not None:
                loop.call_soon_threadsafe(_resolve, future)


class LoopTimer:
    """`Alarm`'s interface on the event loop's own timer (`asyncio.sleep`, millisecond resolution): what a loop on
    a virtual clock needs (the workload tests run on one)."""

    async def __aenter__(self) -> LoopTimer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def at(self, deadline_ns: int) -> None:
        await asyncio.sleep(max(0, deadline_ns - time.perf_counter_ns()) / 1e9)


def _fine_timer_slack() -> None:
    """Let this thread's sleeps end on time: Linux lets a sleeping thread's timer fire up to its "timer slack"
    late (50 µs by default) to batch wake-ups; PR_SET_TIMERSLACK (29) sets it to 1 ns for the calling thread."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
