"""The run loops of the two workload models, as in k6: closed (`constant-vus`: N virtual users, each loops order
-> pause) and open (orders start on a schedule whatever the server does), for the load shapes a run names
(`flashsale.load.shapes`: `Closed`, and the open model's `Open`, `Ramping` and `Spike`).

Both drive an `order(user_index) -> (outcome id, status)` coroutine function and write one record a request.
In the open model a request's latency runs from its *scheduled* start: when the server (or the client) stalls,
the queue it builds shows up in the latencies instead of silently lowering the request rate (no coordinated
omission). Each record also keeps when its request was actually sent, and starts sent more than `LATE_AFTER_S`
after their scheduled time are counted as late; starts that would exceed the bound on requests in flight are not
made and counted as dropped (k6's dropped_iterations). Event loop timers have a resolution of one millisecond
(epoll and libuv both), so the open model is woken by an `Alarm` thread instead (`flashsale.load.alarm`), which
sleeps in nanoseconds: starts leave within a few microseconds of their schedule on an idle client. Any lag the
client does have is in the latencies, as it must be, and in the records' send offsets, where it can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from flashsale.load.alarm import Alarm
from flashsale.load.records import RecordBuffer
from flashsale.load.shapes import Closed, OpenWorkload

OrderFn = Callable[[int], Awaitable[tuple[int, int]]]
# Gives each virtual user its own `order` function for the run (the db target pins it a connection).
SessionFactory = Callable[[], contextlib.AbstractAsyncContextManager[OrderFn]]

LATE_AFTER_S = 0.005


@dataclass
class WorkloadStats:
    started: int = 0  # requests started (measured or not)
    late_starts: int = 0
    dropped_starts: int = 0
    interrupted: int = 0  # requests still running after the grace period, cancelled and not recorded
    elapsed_s: float = 0.0  # from the first start to the last completion
    # closed model, honouring Retry-After: the pauses a refusal's hint made longer than the think time, and their
    # total (as asked for, cut at the run's end), over the whole run, warmup included
    retry_after_waits: int = 0
    retry_after_wait_s: float = 0.0


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
        asyncio.create_task(_virtual_user(v, workload, session, records, users, seed, origin, stop_at, stats))
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
    stats: WorkloadStats,
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
        # An order function that honours `Retry-After`: the wait its last answer asked for (0.0: none). The pause
        # before the next order is the longer of that wait and the think time.
        retry_after = getattr(order, "retry_after_s", None)
        while True:
            started = clock()
            if started >= stop_at:
                return
            outcome, status = await order(int(pick() * users))
            ended = clock()
            add(started - origin, ended - started, outcome, status)
            if settle is not None:
                await settle()
            think = think_s
            if think_s and pause is not None:
                think = pause(think_s * (1 - jitter), think_s * (1 + jitter))
            left_s = max(0.0, (stop_at - ended) / 1e9)
            if retry_after is not None and (asked := retry_after()) > think:
                think = min(asked, left_s)
                stats.retry_after_waits += 1
                stats.retry_after_wait_s += think
            if think:
                await sleep(min(think, left_s))


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
