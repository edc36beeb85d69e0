"""A bounded in-process queue of orders in front of the strategy, served by `workers` tasks (the original's phase
3: a queue of 100 and one worker).

`run(job)` puts the job in the queue and waits for a worker to carry it out, returning what the job returns or
raising what it raises; when `size` jobs are already waiting it raises `QueueFull` at once (a 503 with
`Retry-After`), so that a burst is refused in microseconds instead of piling up on the database's row lock. A job
being carried out no longer counts against `size`: at most `size + workers` orders are in the service at once.
The queue depth is reported to `on_depth` whenever it changes, each refusal to `on_overflow`.

`submit(job)` queues a job nobody waits for (asynchronous orders' settlements, `flashsale.settlement`).

A job whose caller has gone (its future cancelled) before a worker takes it is dropped: nobody waits for its answer,
and it has placed nothing. `stop()` answers the callers still waiting in the queue with `QueueStopped` (their jobs
never run); every later `run` raises it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from flashsale.strategies.base import StrategyUnavailable

T = TypeVar("T")
RETRY_AFTER_S = 1.0

log = logging.getLogger("flashsale.admission")


class QueueFull(StrategyUnavailable):
    """Every place in the order queue is taken: retry later."""

    code = "queue_full"


class QueueStopped(StrategyUnavailable):
    """The order queue has stopped (the service is stopping): the order was not carried out; retry later."""


def _ignore(*_: Any) -> None:
    return None


class OrderQueue:
    def __init__(
        self,
        size: int,
        workers: int = 1,
        *,
        on_depth: Callable[[int], None] = _ignore,
        on_overflow: Callable[[], None] = _ignore,
    ) -> None:
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        if workers < 1:
            raise ValueError(f"queue workers must be at least 1, got {workers}")
        self.size, self.workers = size, workers
        self._jobs: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], asyncio.Future | None]] = asyncio.Queue(size)
        self._on_depth, self._on_overflow = on_depth, on_overflow
        self._tasks: list[asyncio.Task] = []
        self._stopped = False

    @property
    def depth(self) -> int:
        """Jobs waiting for a worker."""
        return self._jobs.qsize()

    @property
    def room(self) -> int:
        """Jobs that can still be queued now."""
        return self.size - self._jobs.qsize()

    def check_room(self) -> None:
        """Raise `QueueFull` (counted as an overflow) if no job can be queued now."""
        if self.room <= 0:
            self._overflow()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"order-queue-worker-{n}") for n in range(self.workers)]

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._jobs.empty():  # nobody will carry these out: their callers must not wait for ever
            _, future = self._jobs.get_nowait()
            if future is not None and not future.done():
                future.set_exception(self._stopped_error())
        self._on_depth(self.depth)

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        if self._stopped:
            raise self._stopped_error()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        try:
            self._jobs.put_nowait((job, future))
        except asyncio.QueueFull:
            self._overflow()
        self._on_depth(self.depth)
        return await future

    def submit(self, job: Callable[[], Awaitable[Any]]) -> None:
        """Queue the job without waiting for it (its result is dropped; it must handle its own errors); raises
        `QueueFull` (not counted as an overflow: nobody was refused) when the queue is full."""
        try:
            self._jobs.put_nowait((job, None))
        except asyncio.QueueFull:
            raise QueueFull(f"the order queue is full ({self.size} waiting)") from None
        self._on_depth(self.depth)

    def _stopped_error(self) -> QueueStopped:
        return QueueStopped(
            "the service is stopping: the order was not placed; retry later", retry_after_s=RETRY_AFTER_S
        )

    def _overflow(self) -> None:
        self._on_overflow()
        raise QueueFull(f"the order queue is full ({self.size} waiting); retry later", retry_after_s=RETRY_AFTER_S)

    async def _work(self) -> None:
        while True:
            job, future = await self._jobs.get()
            self._on_depth(self.depth)
            if future is None:  # submitted: nobody waits for the answer
                try:
                    await job()
                except Exception:
                    log.exception("queued job failed")
                continue
            if future.done():  # the caller has gone
                continue
            try:
                result = await job()
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
