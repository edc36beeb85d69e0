"""The admission rules without a server: the per-user token bucket on a clock the test moves, and the order queue
with jobs the test releases."""

from __future__ import annotations

import asyncio

import pytest

from flashsale.admission import OrderQueue, QueueFull, RateLimited, UserRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestUserRateLimiter:
    def test_a_burst_of_rate_then_refused_with_the_wait_for_the_next_token(self):
        clock = Clock()
        limiter = UserRateLimiter(10, clock=clock)
        for _ in range(10):
            limiter.admit("alice")
        with pytest.raises(RateLimited) as refused:
            limiter.admit("alice")
        assert refused.value.retry_after_s == pytest.approx(0.1)
        limiter.admit("bob")  # every user has a bucket of their own

    def test_tokens_come_back_at_the_rate_up_to_the_burst(self):
        clock = Clock()
        limiter = UserRateLimiter(2, clock=clock)
        limiter.admit("alice")
        limiter.admit("alice")
        clock.now += 0.5  # one token back
        limiter.admit("alice")
        with pytest.raises(RateLimited):
            limiter.admit("alice")
        clock.now += 60  # a long pause fills the bucket, no more
        for _ in range(2):
            limiter.admit("alice")
        with pytest.raises(RateLimited):
            limiter.admit("alice")

    def test_a_rate_below_one_still_admits_one(self):
        limiter = UserRateLimiter(0.1, clock=Clock())
        limiter.admit("alice")
        with pytest.raises(RateLimited) as refused:
            limiter.admit("alice")
        assert refused.value.retry_after_s == pytest.approx(10)

    def test_rate_must_be_positive(self):
        with pytest.raises(ValueError, match="rate must be positive"):
            UserRateLimiter(0)


class TestOrderQueue:
    async def test_refuses_at_once_when_size_jobs_wait_and_serves_the_others_in_order(self):
        depths, overflows = [], []
        queue = OrderQueue(2, 1, on_depth=depths.append, on_overflow=lambda: overflows.append(1))
        await queue.start()
        gate = asyncio.Event()
        started = asyncio.Event()
        done = []

        async def job(n):
            started.set()
            await gate.wait()
            done.append(n)
            return n

        try:
            first = asyncio.create_task(queue.run(lambda: job(1)))
            await started.wait()  # the worker holds job 1: it no longer counts against the size
            waiting = [asyncio.create_task(queue.run(lambda n=n: job(n))) for n in (2, 3)]
            await asyncio.sleep(0)
            assert queue.depth == 2
            with pytest.raises(QueueFull) as full:
                await queue.run(lambda: job(4))
            assert full.value.code == "queue_full"
            gate.set()
            assert [await first, *[await t for t in waiting]] == [1, 2, 3]
            assert done == [1, 2, 3]
            assert overflows == [1]
            assert depths[-1] == 0
        finally:
            await queue.stop()

    async def test_a_job_s_error_reaches_its_caller_and_the_worker_carries_on(self):
        queue = OrderQueue(1, 1)
        await queue.start()

        async def fail():
            raise LookupError("no such thing")

        async def succeed():
            return "ok"

        try:
            with pytest.raises(LookupError):
                await queue.run(fail)
            assert await queue.run(succeed) == "ok"
        finally:
            await queue.stop()

    def test_size_and_workers_must_be_positive(self):
        with pytest.raises(ValueError, match="queue size"):
            OrderQueue(0)
        with pytest.raises(ValueError, match="queue workers"):
            OrderQueue(1, 0)
