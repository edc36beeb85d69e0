"""The two workload models, as in k6: closed (`constant-vus`: N virtual users, each loops order -> pause) and
open (`constant-arrival-rate`: orders start on a fixed schedule whatever the server does), and the load shapes a
run names (`Shape`: `Closed`, and the open model's `Open`, `Ramping` and `Spike`), each validated when it is made.

Both drive an `order(user_index) -> (outcome id, status)` coroutine function and write one record a request.
In the open model a request's latency runs from its *scheduled* start: when the server (or the client) stalls,
the queue it builds shows up in the latencies instead of silently lowering the request rate (no coordinated
omission). Each record also keeps when its request was actually sent, and starts sent more than `LATE_AFTER_S`
after their scheduled time are counted as late; starts that would exceed the bound on requests in flight are not
made and counted as dropped (k6's dropped_iterations). Event loop timers have a resolution of one millisecond
(epoll and libuv both), so the open model is woken by an `Alarm` thread instead, which sleeps in nanoseconds:
starts leave within a few microseconds of their schedule on an idle client. Any lag the client does have is in
the latencies, as it must be, and in the records' send offsets, where it can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from flashsale.load.records import RecordBuffer

OrderFn = Callable[[int], Awaitable[tuple[int, int]]]
# Gives each virtual user its own `order` function for the run (the db target pins it a connection).
SessionFactory = Callable[[], contextlib.AbstractAsyncContextManager[OrderFn]]

LATE_AFTER_S = 0.005
SPIKE_STREAM = 0x5B1CE  # the spike's arrival instants come from their own random stream of the seed


class _Shape:
    """What every load shape tells the rest of the runner (`LoadConfig.shape` holds one), so that a new shape is
    its class here, its option of `flashsale load` (cli/load.py) and its line in the text summary (summary.py)."""

    model: ClassVar[str] = "open"  # "closed": virtual users loop order -> pause; "open": starts on a schedule

    @property
    def span_s(self) -> float | None:
        """How long its schedule lasts (None: as long as the run): `flashsale load`'s default duration."""
        return None

    def params(self) -> dict[str, Any]:
        """Its parameters under the names of `flashsale load`'s options: the summary's, and a measured cell's."""
        raise NotImplementedError

    def check_run(self, *, run_s: float, users: int | None) -> None:
        """Refuse (ValueError) a run of `run_s` seconds, warmup included, over `users` users (None: the sale's own)
        that this shape cannot make."""


@dataclass(frozen=True)
class Closed(_Shape):
    """k6 `constant-vus`: `vus` users, each placing an order, then pausing `think_ms`, until the end.

    `think_jitter` j draws each pause uniformly from `think_ms * (1 - j)` to `think_ms * (1 + j)` (the same mean),
    as real buyers pause: users that start together and pause exactly alike stay in step and meet at the row lock
    every cycle; with a jitter they drift apart."""

    model: ClassVar[str] = "closed"
    vus: int = 10
    think_ms: float = 100.0
    think_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.vus < 1:
            raise ValueError(f"vus must be at least 1, got {self.vus}")
        if self.think_ms < 0:
            raise ValueError(f"think time must be 0 or more, got {self.think_ms}")
        if not 0 <= self.think_jitter <= 1:
            raise ValueError(f"think jitter must be between 0 and 1, got {self.think_jitter}")

    @property
    def think_s(self) -> float:
        return self.think_ms / 1000

    def params(self) -> dict[str, Any]:
        return {"vus": self.vus, "think_ms": self.think_ms, "think_jitter": self.think_jitter}


@dataclass(frozen=True)
class Open(_Shape):
    """k6 `constant-arrival-rate`: `rate` orders a second on a fixed schedule, at most `max_inflight` at once."""

    rate: float
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return self.rate

    def params(self) -> dict[str, Any]:
        return {"rate": self.rate, "max_inflight": self.max_inflight}

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        interval_ns, count = _schedule_shape(self.rate, duration_s)
        return Arrivals(count, lambda i: int(i * interval_ns))


@dataclass(frozen=True)
class Ramping(_Shape):
    """k6 `ramping-arrival-rate`: the rate goes linearly from point to point of `stages`, (time s, orders/s) pairs
    from (0, r0); after the last point it stays at the last rate. Starts are where the cumulative count of
    arrivals (the integral of the rate) reaches 0, 1, 2, ...: the schedule a constant rate would make, bent."""

    stages: tuple[tuple[float, float], ...]
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple((float(t), float(r)) for t, r in self.stages))
        times = [t for t, _ in self.stages]
        if not self.stages or times[0] != 0:
            raise ValueError("stages must start at 0s, e.g. 0s:0,2s:2000,12s:2000")
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("stage times must increase")
        if any(r < 0 for _, r in self.stages) or not any(r > 0 for _, r in self.stages):
            raise ValueError("stage rates must be 0 or more, and not all 0")
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return max(r for _, r in self.stages)

    @property
    def span_s(self) -> float:
        return self.stages[-1][0]

    def params(self) -> dict[str, Any]:
        return {"stages": self.stages, "max_inflight": self.max_inflight}

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        points = list(self.stages)
        if points[-1][0] < duration_s:
            points.append((duration_s, points[-1][1]))
        t = np.array([p[0] for p in points], dtype=np.float64)
        r = np.array([p[1] for p in points], dtype=np.float64)
        # cumulative arrivals at each point, then invert the piecewise quadratic for every whole arrival
        cumulative = np.concatenate([[0.0], np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(t))])
        end = float(np.interp(duration_s, t, cumulative))
        wanted = np.arange(math.ceil(end - 1e-9), dtype=np.float64)
        segment = np.clip(np.searchsorted(cumulative, wanted, side="right") - 1, 0, len(t) - 2)
        t0, r0, c0 = t[segment], r[segment], cumulative[segment]
        slope = (r[segment + 1] - r0) / (t[segment + 1] - t0)
        need = wanted - c0
        with np.errstate(divide="ignore", invalid="ignore"):
            quadratic = (-r0 + np.sqrt(r0 * r0 + 2 * slope * need)) / slope
            linear = need / r0
        dt = np.where(np.abs(slope) > 1e-12, quadratic, linear)
        offsets = np.round((t0 + dt) * 1e9).astype(np.int64)
        offsets = offsets[offsets < round(duration_s * 1e9)]
        return Arrivals(len(offsets), offsets.item)


@dataclass(frozen=True)
class Spike(_Shape):
    """A sale's opening: `buyers` arrive at random instants within `window_s` of the run's start, each placing one
    order (buyer b is user b: the scenario needs at least `buyers` users)."""

    buyers: int
    window_s: float
    max_inflight: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "buyers", int(self.buyers))
        object.__setattr__(self, "window_s", float(self.window_s))
        if self.buyers < 1 or not self.window_s > 0:
            raise ValueError(
                f"a spike needs at least one buyer and a positive window, got {self.buyers}:{self.window_s}"
            )
        _check_inflight(self.max_inflight)

    @property
    def peak_rate(self) -> float:
        return self.buyers / self.window_s

    @property
    def span_s(self) -> float:
        return self.window_s

    def params(self) -> dict[str, Any]:
        return {"spike": (self.buyers, self.window_s), "max_inflight": self.max_inflight}

    def check_run(self, *, run_s: float, users: int | None) -> None:
        if self.window_s > run_s:
            raise ValueError(f"the spike's window ({self.window_s:g} s) is longer than the run")
        if users is not None and users < self.buyers:
            raise ValueError(f"a spike of {self.buyers} buyers needs as many users, got {users}")

    def arrivals(self, duration_s: float, seed: int) -> Arrivals:
        draw = np.random.default_rng([abs(seed), SPIKE_STREAM])
        offsets = np.sort(np.round(draw.uniform(0, self.window_s * 1e9, self.buyers)).astype(np.int64))
        return Arrivals(self.buyers, offsets.item, users=lambda i: i)


@dataclass(frozen=True)
class Arrivals:
    """An open workload's starts: `count` of them, the offset (ns from the origin) of start i, and the user of start
    i (None: drawn at random)."""

    count: int
    offset: Callable[[int], int]
    users: Callable[[int], int] | None = None


def _check_inflight(max_inflight: int) -> None:
    if max_inflight < 1:
        raise ValueError(f"max in-flight must be at least 1, got {max_inflight}")


OpenWorkload = Open | Ramping | Spike
Shape = Closed | OpenWorkload  # what `LoadConfig.shape` holds


@dataclass
class WorkloadStats:
    started: int = 0  # requests started (measured or not)
    late_starts: int = 0
    dropped_starts: int = 0
    interrupted: int = 0  # requests still running after the grace period, cancelled and not recorded
    elapsed_s: float = 0.0  # from the first start to the last completion


def schedule(rate: float, duration_s: float) -> np.ndarray:
    """Scheduled start offsets (ns) of the open model: one every 1/rate seconds from 0, strictly before the end.

    `run_open` computes the same offsets one at a time (`int(i * interval)`), so a long run holds no schedule.
    """
    interval_ns, count = _schedule_shape(rate, duration_s)
    return (np.arange(count, dtype=np.float64) * interval_ns).astype(np.int64)


def _schedule_shape(rate: float, duration_s: float) -> tuple[float, int]:
    interval_ns = 1e9 / rate
    return interval_ns, max(0, math.ceil(duration_s * 1e9 / interval_ns - 1e-9))


async def run_closed(
    workload: Closed,
    session: SessionFactory,
    records: RecordBuffer,
    *,
    users: int,
    duration_s: float,
    seed: int = 0,
    grace_s: float = 10.0,
    origin_ns: int | None = None,
    vu_ids: Sequence[int] | None = None,
) -> WorkloadStats:
    """Run `workload.vus` virtual users for `duration_s`; requests in flight at the end may finish within `grace_s`.

    Each VU draws its users from its own random stream (seeded by `seed` and its number), so a seed replays
    the same choices. `vu_ids` are the numbers of the VUs this call runs (default all of them): a process that
    runs its share of a run's VUs passes theirs, so that the run makes the same choices over any number of
    processes.
    """
    origin = time.perf_counter_ns() if origin_ns is None else origin_ns
    stop_at = origin + round(duration_s * 1e9)
    stats = WorkloadStats()
    before = len(records)
    vus = [
        asyncio.create_task(_virtual_user(v, workload, session, records, users, seed, origin, stop_at))
        for v in (range(workload.vus) if vu_ids is None else vu_ids)
    ]
    stats.interrupted = await _finish(vus, stop_at, grace_s)
    stats.started = len(records) - before + stats.interrupted
    stats.elapsed_s = (time.perf_counter_ns() - origin) / 1e9
    return stats


async def _virtual_user(
    vu: int,
    workload: Closed,
    session: SessionFactory,
    records: RecordBuffer,
    users: int,
    seed: int,
    origin: int,
    stop_at: int,
) -> None:
    pick = random.Random(f"{seed}/{vu}").random
    think_s, jitter = workload.think_s, workload.think_jitter
    # Its own stream, so that a jitter leaves the users each VU picks as they were.
    pause = random.Random(f"{seed}/{vu}/think").uniform if jitter else None
    clock = time.perf_counter_ns
    add = records.add
    sleep = asyncio.sleep
    async with session() as order:
        settle = getattr(order, "settle", None)  # an order function that follows accepted orders to the end
        while True:
            started = clock()
            if started >= stop_at:
                return
            outcome, status = await order(int(pick() * users))
            ended = clock()
            add(started - origin, ended - started, outcome, status)
            if settle is not None:
                await settle()
            if think_s:
                think = pause(think_s * (1 - jitter), think_s * (1 + jitter)) if pause is not None else think_s
                await sleep(min(think, max(0.0, (stop_at - ended) / 1e9)))


async def run_open(
    workload: OpenWorkload,
    order: OrderFn,
    records: RecordBuffer,
    *,
    users: int,
    duration_s: float,
    seed: int = 0,
    grace_s: float = 10.0,
    origin_ns: int | None = None,
    share: tuple[int, int] = (0, 1),
) -> WorkloadStats:
    """Start `order` on the schedule of `workload` (a constant rate, ramping stages or a spike) for `duration_s`;
    see the module's docstring.

    `share` = (k, n) makes this call start every n-th scheduled order from the k-th (k = 0..n-1): n processes
    that each run their share make exactly the schedule of one. Each share draws its users from its own stream.
    """
    origin = time.perf_counter_ns() if origin_ns is None else origin_ns
    arrivals = workload.arrivals(duration_s, seed)
    count, offset_of, user_of = arrivals.count, arrivals.offset, arrivals.users
    first, stride = share
    if not 0 <= first < stride:
        raise ValueError(f"share must be (k, n) with 0 <= k < n, got {share}")
    late_ns = round(LATE_AFTER_S * 1e9)
    pick = random.Random(f"{seed}/open" if stride == 1 else f"{seed}/open/{first}").random
    clock = time.perf_counter_ns
    add = records.add
    stats = WorkloadStats()
    running: set[asyncio.Task] = set()

    async def one(offset: int, user: int) -> None:
        sent = clock() - origin  # when this task runs: after its wake-up and whatever the loop ran before it
        if sent - offset > late_ns:
            stats.late_starts += 1
        outcome, status = await order(user)
        add(offset, clock() - origin - offset, outcome, status, sent)

    i = first  # the next start
    due = offset_of(i) if i < count else 0  # and its offset
    async with Alarm() as alarm:
        while i < count:
            now = clock() - origin
            while due <= now:
                if len(running) >= workload.max_inflight:
                    stats.dropped_starts += 1
                else:
                    user = user_of(i) if user_of is not None else int(pick() * users)
                    task = asyncio.create_task(one(due, user))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    stats.started += 1
                i += stride
                if i >= count:
                    break
                due = offset_of(i)
            if i < count:
                await alarm.at(origin + due)
    stop_at = origin + round(duration_s * 1e9)
    stats.interrupted = await _finish(list(running), stop_at, grace_s)
    stats.elapsed_s = (clock() - origin) / 1e9
    return stats


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


async def _finish(tasks: list[asyncio.Task], stop_at: int, grace_s: float) -> int:
    """Wait for `tasks` until `grace_s` after `stop_at` and cancel the rest (returns how many); a task that
    failed (a bug or a failed setup, since targets turn request errors into outcomes) stops the run at once."""
    if not tasks:
        return 0
    timeout = max(0.0, (stop_at - time.perf_counter_ns()) / 1e9) + grace_s
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    return len(pending)


@contextlib.asynccontextmanager
async def shared(order: OrderFn) -> AsyncIterator[OrderFn]:
    """A session factory's body for targets whose virtual users all share one `order` function."""
    yield order
