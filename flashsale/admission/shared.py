"""Admission control shared by every server process and host (`serve --admission redis`): the per-user rate limit
(`SharedRateLimiter`) and, for asynchronous orders, the bounded order queue (`OrderStream`) live in Redis, so that
`--user-rate` and `--queue-size` hold for the whole service, not per process.

While Redis does not answer (`RedisBreaker`), each process falls back to strict local limits at once: its share of
the rate (`user_rate / processes`, as many of the burst) and of the queue (`queue_size / processes` places in its
in-process queue), so that the processes of one server together never admit more than the shared limits would.
Shared admission resumes when Redis answers again.

    admission = SharedAdmission(breaker, limiter=..., fallback_limiter=..., stream=..., fallback_queue=...)
    await admission.admit(user_id)          # RateLimited
    await admission.check_room()            # QueueFull
    on_stream = await admission.enqueue(order_id)   # False: the caller's local settlement takes it
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from uuid import UUID

from psycopg.conninfo import conninfo_to_dict
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from flashsale.admission.order_queue import RETRY_AFTER_S, OrderQueue, QueueFull
from flashsale.admission.order_stream import OrderStream
from flashsale.admission.rate_limit import RateLimited, UserRateLimiter
from flashsale.admission.redis_breaker import RedisBreaker
from flashsale.admission.shared_rate_limit import SharedRateLimiter
from flashsale.kv import connection as kv_connection

# A request's Redis call waits this long at most (connecting or answering) before its process falls back; redis-py's
# own retries are off, so that this is the bound.
REQUEST_TIMEOUT_S = 0.5


def database_namespace(database_url: str) -> str:
    """A short tag of the database (host, port and name) for the Redis keys of its service, so that services of
    different databases can share one Redis without sharing limits or queues."""
    info = conninfo_to_dict(database_url)
    where = f"{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
    return hashlib.sha1(where.encode()).hexdigest()[:12]


def _ignore() -> None:
    return None


class SharedAdmission:
    def __init__(
        self,
        breaker: RedisBreaker,
        *,
        limiter: SharedRateLimiter | None = None,
        fallback_limiter: UserRateLimiter | None = None,
        stream: OrderStream | None = None,
        fallback_queue: OrderQueue | None = None,
        on_overflow: Callable[[], None] = _ignore,
    ) -> None:
        if (limiter is None) != (fallback_limiter is None) or (stream is None) != (fallback_queue is None):
            raise ValueError("each shared limit needs its local fallback")
        self.breaker = breaker
        self.limiter, self.fallback_limiter = limiter, fallback_limiter
        self.stream, self.fallback_queue = stream, fallback_queue
        self._on_overflow = on_overflow
        self.enqueued = 0  # orders put on the stream
        self.kept_local = 0  # accepted orders settled by this process instead (Redis away, or the stream full)
        self.client: Redis | None = None  # the client `connect` opened, closed by `aclose`
        self.redis_url: str | None = None  # where `connect` found Redis, and the database's namespace there
        self.namespace: str | None = None

    @classmethod
    def connect(
        cls,
        redis_url: str,
        *,
        namespace: str,
        user_rate: float,
        user_burst: float | None = None,
        queue_size: int,
        processes: int,
        fallback_queue: OrderQueue | None,
        probe_interval_s: float = 0.25,
        on_open: Callable[[], None] = _ignore,
        on_close: Callable[[], None] = _ignore,
        on_overflow: Callable[[], None] = _ignore,
    ) -> SharedAdmission:
        """Shared admission on the Redis at `redis_url` for the service of one database (`namespace`), served by
        `processes` processes on this host: the rate limit if `user_rate` > 0, the order stream if `queue_size` > 0
        (with `fallback_queue`, this process's share). Nothing is sent before the first call; close with
        `aclose()`."""
        client = kv_connection.connect(
            redis_url,
            socket_timeout=REQUEST_TIMEOUT_S,
            socket_connect_timeout=REQUEST_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        breaker = RedisBreaker(client.ping, probe_interval_s=probe_interval_s, on_open=on_open, on_close=on_close)
        limiter = fallback_limiter = None
        if user_rate > 0:
            limiter = SharedRateLimiter(client, user_rate, burst=user_burst, namespace=namespace)
            share = user_rate / processes
            fallback_limiter = UserRateLimiter(share, burst=max(1.0, limiter.burst / processes))
        stream = OrderStream(client, namespace=namespace, size=queue_size) if queue_size > 0 else None
        admission = cls(
            breaker,
            limiter=limiter,
            fallback_limiter=fallback_limiter,
            stream=stream,
            fallback_queue=fallback_queue if stream is not None else None,
            on_overflow=on_overflow,
        )
        admission.client, admission.redis_url, admission.namespace = client, redis_url, namespace
        return admission

    async def aclose(self) -> None:
        await self.breaker.stop()
        if self.client is not None:
            await self.client.aclose()

    async def admit(self, user: Hashable) -> None:
        """Refuse the order (`RateLimited`) if its user is over the rate."""
        if self.limiter is None or self.fallback_limiter is None:
            return
        if self.breaker.closed:
            try:
                await self.limiter.admit(user)
                return
            except RateLimited:
                raise
            except Exception as exc:
                if not self.breaker.failed(exc):
                    raise
        else:
            self.breaker.fell_back()
        self.fallback_limiter.admit(user)

    async def check_room(self) -> None:
        """Refuse the order (`QueueFull`, counted as an overflow) if the queue has no room now."""
        if self.stream is None or self.fallback_queue is None:
            return
        if self.breaker.closed:
            try:
                room = await self.stream.has_room()
            except Exception as exc:
                if not self.breaker.failed(exc):
                    raise
            else:
                if not room:
                    self._on_overflow()
                    raise QueueFull(
                        f"the order stream is full ({self.stream.size} orders); retry later",
                        retry_after_s=RETRY_AFTER_S,
                    )
                return
        else:
            self.breaker.fell_back()
        self.fallback_queue.check_room()

    async def enqueue(self, order_id: UUID) -> bool:
        """Put an accepted (PENDING) order on the stream: False if it is not there (Redis away, or the stream
        filled since `check_room`), and the caller's local settlement must take it."""
        if self.stream is not None and self.breaker.closed:
            try:
                if await self.stream.add(order_id) is not None:
                    self.enqueued += 1
                    return True
            except Exception as exc:
                if not self.breaker.failed(exc):
                    raise
        self.kept_local += 1
        return False

    def stats(self) -> dict[str, float | int | bool]:
        return {**self.breaker.stats(), "enqueued": self.enqueued, "kept_local": self.kept_local}
