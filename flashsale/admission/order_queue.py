"""A bounded in-process queue of orders in front of the strategy, served by `workers` tasks (the original's phase
3: a queue of 100 and one worker).

`run(job)` puts the job in the queue and waits for a worker to carry it out, returning what the job returns or
raising what it raises; when `size` jobs are already waiting it raises `QueueFull` at once (a 503 with
`Retry-After`), so that a burst is refused in microseconds instead of piling up on the database's row lock. A job
being carried out no longer counts against `size`: at most `size + workers` orders are in the service at once.
The queue depth is reported to `on_depth` whenever it changes, each refusal to `on_overflow`.

`submit(job)` queues a job nobody waits for (asynchronous orders' settlements, `flashsale.services.settlement`).

A job whose caller has gone (cancelled) before a worker takes it is dropped: nobody waits for its answer, and it
has placed nothing. A caller cancelled once a worker has begun its job waits for the job's end instead and returns
what it did: a begun order may commit, and its client must then be told so (uvicorn cancels the requests left when
SIGTERM's drain times out). `stop(grace_s)` answers the callers still waiting in the queue with `QueueStopped`
(their jobs never run), gives the jobs being carried out `grace_s` to finish, then cancels them; every later `run`
or `submit` raises `QueueStopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


@dataclass
class _Call(Generic[T]):
    job: Callable[[], Awaitable[T]]
    future: asyncio.Future[T] | None  # None: submitted, nobody waits for the answer
    begun: bool = False


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
        self._jobs: asyncio.Queue[_Call] = asyncio.Queue(size)
        self._on_depth, self._on_overflow = on_depth, on_overflow
        self._tasks: list[asyncio.Task] = []
        self._running: set[asyncio.Future[None]] = set()  # resolved as each begun job ends
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

    async def stop(self, grace_s: float = 0.0) -> None:
        """Answer the waiting callers `QueueStopped`, let the begun jobs finish for up to `grace_s`, cancel the
        rest."""
        self._stopped = True
        while not self._jobs.empty():  # nobody will carry these out: their callers must not wait for ever
            call = self._jobs.get_nowait()
            if call.future is not None and not call.future.done():
                call.future.set_exception(self._stopped_error())
        self._on_depth(self.depth)
        if self._running and grace_s > 0:
            await asyncio.wait(set(self._running), timeout=grace_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        if self._stopped:
            raise self._stopped_error()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        call = _Call(job, future)
        try:
            self._jobs.put_nowait(call)
        except asyncio.QueueFull:
            self._overflow()
        self._on_depth(self.depth)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not call.begun or (task := asyncio.current_task()) is None:
                future.cancel()  # a worker that takes it drops it
                raise
            task.uncancel()  # begun: its end is this caller's answer (stop() gives it its grace)
            return await future

    def submit(self, job: Callable[[], Awaitable[Any]]) -> None:
        """Queue the job without waiting for it (its result is dropped; it must handle its own errors); raises
        `QueueFull` (not counted as an overflow: nobody was refused) when the queue is full, `QueueStopped` once
        stopped."""
        if self._stopped:
            raise self._stopped_error()
        try:
            self._jobs.put_nowait(_Call(job, None))
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
            call = await self._jobs.get()
            self._on_depth(self.depth)
            if call.future is not None and call.future.done():  # the caller has gone
                continue
            call.begun = True
            ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._running.add(ended)
            try:
                await self._carry_out(call)
            finally:
                self._running.discard(ended)
                ended.set_result(None)

    async def _carry_out(self, call: _Call) -> None:
        future = call.future
        if future is None:  # submitted: nobody waits for the answer
            try:
                await call.job()
            except Exception:
                log.exception("queued job failed")
            return
        try:
            result = await call.job()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
