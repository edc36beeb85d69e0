"""The settlers of the shared order stream (`serve --admission redis --accept async`): `workers` consumers in each
server process read the accepted orders' ids from the stream (`flashsale.admission.order_stream`), settle each one
(`settlement.settle`: claim, place, mark, exactly once whatever dies when), and then acknowledge and delete its
entry.

An entry whose settlement failed (the database lost, the strategy busy) stays in its consumer's pending list, and an
entry read by a process that died stays in that process's: every `claim_after_s / 2` each consumer takes over the
entries nobody has acknowledged for `claim_after_s` (`XAUTOCLAIM`) and settles them. A settlement that runs again
for an order already settled finds it no longer pending and changes nothing, so an entry claimed twice is still
settled once. While Redis does not answer, the consumers wait `retry_s` between tries; the orders stay PENDING in
PostgreSQL, where the local sweep (`settlement.Settler`) finds them if Redis comes back without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from flashsale.admission.order_stream import OrderStream, StreamEntry
from flashsale.admission.redis_breaker import is_redis_failure
from flashsale.services import settlement
from flashsale.strategies import OrderStrategy

BLOCK_MS = 1000  # how long a consumer's read waits for an entry before it looks for idle entries again
RETRY_S = 0.25

log = logging.getLogger("flashsale.services.settlement")


def consumer_prefix() -> str:
    """The consumers' names of this process: host and pid, so that a dead process's entries are told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StreamSettlers:
    def __init__(
        self,
        stream: OrderStream,
        strategy: OrderStrategy,
        pool: AsyncConnectionPool,
        *,
        workers: int,
        claim_after_s: float,
        retry_s: float = RETRY_S,
        prefix: str | None = None,
        client: Redis | None = None,
    ) -> None:
        """`client`: the stream's own client, closed by `stop`."""
        if workers < 1:
            raise ValueError(f"stream settlers need at least 1 worker, got {workers}")
        self.stream, self.strategy, self.pool = stream, strategy, pool
        self.workers, self.claim_after_s, self.retry_s = workers, claim_after_s, retry_s
        self.prefix = prefix or consumer_prefix()
        self.client = client
        self.settled = 0  # entries settled and acknowledged by this process
        self.claimed = 0  # entries taken over from a consumer that had not acknowledged them
        self.postponed = 0  # settlements that failed (the entry stays pending, to be claimed again)
        self._tasks: list[asyncio.Task] = []
        self._settling: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # Redis away: the consumers make the group when it answers
            await self.stream.ensure_group()
        self._tasks = [
            asyncio.create_task(self._consume(f"{self.prefix}:{n}"), name=f"stream-settler-{n}")
            for n in range(self.workers)
        ]

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop reading; settlements under way get `grace_s` to finish (the rest stay pending, to be claimed)."""
        self._stopping = True
        for task in self._tasks:
            if task not in self._settling:
                task.cancel()
        if self._settling and grace_s > 0:
            await asyncio.wait(set(self._settling), timeout=grace_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.client is not None:
            await self.client.aclose()

    async def _consume(self, consumer: str) -> None:
        claim_every_s = self.claim_after_s / 2
        next_claim = time.monotonic() + claim_every_s
        while not self._stopping:
            try:
                entries: list[StreamEntry] = []
                if time.monotonic() >= next_claim:
                    entries = await self.stream.claim_idle(consumer, min_idle_ms=round(self.claim_after_s * 1000))
                    self.claimed += len(entries)
                    next_claim = time.monotonic() + claim_every_s
                if not entries:
                    entries = await self.stream.read(consumer, block_ms=BLOCK_MS)
            except Exception as exc:
                if not is_redis_failure(exc):
                    log.exception("order stream read failed")
                await asyncio.sleep(self.retry_s)
                continue
            for entry in entries:
                if self._stopping:
                    break  # read, not settled: claimed by another consumer after claim_after_s
                await self._settle(entry)

    async def _settle(self, entry: StreamEntry) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._settling.add(task)
        try:
            await settlement.settle(self.strategy, self.pool, entry.order_id)
        except Exception as exc:  # the database, a pool timeout, the strategy busy: claimed again later
            self.postponed += 1
            log.warning("settlement postponed", extra={"fields": {"order_id": str(entry.order_id), "cause": repr(exc)}})
            return
        finally:
            self._settling.discard(task)
        try:
            await self.stream.done(entry.entry_id)
        except Exception as exc:  # claimed again later; its settlement then finds it settled
            fields = {"entry": entry.entry_id, "cause": repr(exc)}
            log.warning("settled entry not acknowledged", extra={"fields": fields})
            return
        self.settled += 1

    def stats(self) -> dict[str, int]:
        return {"settled": self.settled, "claimed": self.claimed, "postponed": self.postponed}
