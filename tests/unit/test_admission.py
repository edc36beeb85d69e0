"""The admission rules without a server: the per-user token bucket on a clock the test moves, and the order queue
with jobs the test releases: callers that leave, a stop with callers waiting, and every way of meeting a full queue."""

from __future__ import annotations

import asyncio

import pytest

from flashsale.admission import OrderQueue, QueueFull, QueueStopped, RateLimited, UserRateLimiter, rate_limit
from tests.waiting import HANG_S, until


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

    def test_once_prune_at_users_are_tracked_a_newcomer_forgets_the_full_buckets_only(self, monkeypatch):
        """A full bucket says nothing a new one would not; a bucket still refilling must keep limiting its user."""
        monkeypatch.setattr(rate_limit, "PRUNE_AT", 3)
        clock = Clock()
        limiter = UserRateLimiter(1, burst=2, clock=clock)
        limiter.admit("rested")  # one token left, full again a second later
        clock.now += 1.5
        for user in ("drained", "drained", "other"):
            limiter.admit(user)
        assert limiter.tracked == 3  # below PRUNE_AT when each came: nothing was pruned

        clock.now += 0.5  # "rested" is full; "drained" has half a token, "other" one and a half
        limiter.admit("newcomer")

        assert limiter.tracked == 3  # "rested" was forgotten
        with pytest.raises(RateLimited) as refused:
            limiter.admit("drained")  # its bucket was kept: still limited
        assert refused.value.retry_after_s == pytest.approx(0.5)
        for _ in range(2):  # a forgotten user starts again from a full bucket: nothing it had was lost
            limiter.admit("rested")
        with pytest.raises(RateLimited):
            limiter.admit("rested")

    def test_rate_must_be_positive(self):
        with pytest.raises(ValueError, match="rate must be positive"):
            UserRateLimiter(0)


class HeldJobs:
    """Queue jobs that note their names as they run; the one named "working" holds its worker until `release`."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.release = asyncio.Event()

    async def run(self, name: str) -> str:
        self.ran.append(name)
        if name == "working":
            await self.release.wait()
        return name


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
            async with asyncio.timeout(HANG_S):  # an answer dropped must fail the test, not hang it
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
            async with asyncio.timeout(HANG_S):
                with pytest.raises(LookupError):
                    await queue.run(fail)
                assert await queue.run(succeed) == "ok"
        finally:
            await queue.stop()

    async def test_a_queued_job_whose_caller_left_never_runs(self):
        queue = OrderQueue(2, 1)
        await queue.start()
        jobs = HeldJobs()

        try:
            working = asyncio.create_task(queue.run(lambda: jobs.run("working")))
            await until(lambda: jobs.ran == ["working"], "the worker to take the first job")
            left = asyncio.create_task(queue.run(lambda: jobs.run("left")))
            await until(lambda: queue.depth == 1, "the second job in the queue")
            left.cancel()
            with pytest.raises(asyncio.CancelledError):
                await left
            stays = asyncio.create_task(queue.run(lambda: jobs.run("stays")))
            jobs.release.set()
            async with asyncio.timeout(HANG_S):
                assert (await working, await stays) == ("working", "stays")
            assert jobs.ran == ["working", "stays"]  # the job of the caller who left was dropped
        finally:
            await queue.stop()

    async def test_stop_answers_the_callers_still_waiting_and_runs_none_of_their_jobs(self):
        depths: list[int] = []
        queue = OrderQueue(3, 1, on_depth=depths.append)
        await queue.start()
        ran: list[str] = []

        async def job(name):
            ran.append(name)
            await asyncio.Event().wait()  # the worker is held until it is cancelled

        working = asyncio.create_task(queue.run(lambda: job("working")))
        await until(lambda: ran == ["working"], "the worker to take the first job")
        waiting = [asyncio.create_task(queue.run(lambda n=n: job(f"waiting-{n}"))) for n in range(2)]
        await until(lambda: queue.depth == 2, "two callers in the queue")

        await queue.stop()

        async with asyncio.timeout(HANG_S):  # they must be answered, not left waiting
            answers = await asyncio.gather(*waiting, return_exceptions=True)
        assert [type(a) for a in answers] == [QueueStopped] * 2
        assert (answers[0].code, answers[0].retry_after_s) == ("unavailable", 1.0)
        assert ran == ["working"]
        assert (queue.depth, depths[-1]) == (0, 0)
        with pytest.raises(QueueStopped):  # and nobody is queued afterwards
            async with asyncio.timeout(HANG_S):
                await queue.run(lambda: job("after"))
        assert ran == ["working"]
        working.cancel()

    async def test_a_caller_cancelled_once_its_job_has_begun_gets_the_job_s_answer(self):
        """uvicorn cancels the requests left when the drain times out: an order already being placed may still
        commit, so its caller waits for its end and answers what it did."""
        queue = OrderQueue(1, 1)
        await queue.start()
        jobs = HeldJobs()
        try:
            working = asyncio.create_task(queue.run(lambda: jobs.run("working")))
            await until(lambda: jobs.ran == ["working"], "the worker to take the job")
            working.cancel()
            await asyncio.sleep(0)  # the cancellation reaches the caller while the job still runs
            assert not working.done()
            jobs.release.set()
            async with asyncio.timeout(HANG_S):
                assert await working == "working"
            assert working.cancelling() == 0  # the cancellation was taken back, not left pending
        finally:
            await queue.stop()

    async def test_stop_gives_begun_jobs_their_grace_and_answers_them(self):
        queue = OrderQueue(2, 2)
        await queue.start()
        first, second = HeldJobs(), HeldJobs()
        answers = [asyncio.create_task(queue.run(lambda jobs=jobs: jobs.run("working"))) for jobs in (first, second)]
        await until(lambda: first.ran == second.ran == ["working"], "both workers to take a job")

        stopping = asyncio.create_task(queue.stop(grace_s=HANG_S))
        first.release.set()
        async with asyncio.timeout(HANG_S):
            assert await answers[0] == "working"  # finished within the grace: answered
        assert not stopping.done()  # the other one still runs: the grace goes on
        second.release.set()
        async with asyncio.timeout(HANG_S):
            await stopping
            assert await answers[1] == "working"

    async def test_a_job_still_running_after_the_grace_is_cut(self):
        queue = OrderQueue(1, 1)
        await queue.start()
        stuck = HeldJobs()
        cut = asyncio.create_task(queue.run(lambda: stuck.run("working")))
        await until(lambda: stuck.ran == ["working"], "the worker to take the job")
        async with asyncio.timeout(HANG_S):
            await queue.stop(grace_s=0.05)
            with pytest.raises(asyncio.CancelledError):
                await cut  # cut with its query: its caller learns nothing more

    async def test_nothing_is_submitted_once_stopped(self):
        queue = OrderQueue(2, 1)
        await queue.start()
        await queue.stop()
        jobs = HeldJobs()
        with pytest.raises(QueueStopped):
            queue.submit(lambda: jobs.run("late"))
        assert (queue.depth, jobs.ran) == (0, [])

    async def test_a_full_queue_refuses_run_and_submit_without_running_their_jobs(self):
        """`run` and `check_room` count an overflow (a client was refused); `submit` does not (nobody was)."""
        overflows: list[int] = []
        queue = OrderQueue(1, 1, on_overflow=lambda: overflows.append(1))
        await queue.start()
        jobs = HeldJobs()

        try:
            working = asyncio.create_task(queue.run(lambda: jobs.run("working")))
            await until(lambda: jobs.ran == ["working"], "the worker to take the first job")
            queue.submit(lambda: jobs.run("submitted"))
            assert (queue.depth, queue.room) == (1, 0)

            with pytest.raises(QueueFull):
                queue.submit(lambda: jobs.run("submitted-over"))
            assert overflows == []
            with pytest.raises(QueueFull) as full:
                queue.check_room()
            assert overflows == [1]
            with pytest.raises(QueueFull) as full:
                await queue.run(lambda: jobs.run("run-over"))
            assert (full.value.code, full.value.retry_after_s, overflows) == ("queue_full", 1.0, [1, 1])

            jobs.release.set()
            async with asyncio.timeout(HANG_S):
                assert await working == "working"
                await until(lambda: len(jobs.ran) == 2 and queue.depth == 0, "the submitted job")
                assert await queue.run(lambda: jobs.run("after")) == "after"  # room again
            assert jobs.ran == ["working", "submitted", "after"]
        finally:
            await queue.stop()

    def test_size_and_workers_must_be_positive(self):
        with pytest.raises(ValueError, match="queue size"):
            OrderQueue(0)
        with pytest.raises(ValueError, match="queue workers"):
            OrderQueue(1, 0)
