"""`serve --admission redis`: the service's shared admission (`flashsale.admission.shared`) and the settlers of its
order stream, made from the settings. redis-py is imported here, by services that share admission only."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from flashsale.admission.order_stream import OrderStream
from flashsale.admission.shared import SharedAdmission, database_namespace
from flashsale.http.handler_context import HandlerContext
from flashsale.http.settings import ServiceSettings
from flashsale.kv import connection as kv_connection
from flashsale.services.stream_settlement import BLOCK_MS, StreamSettlers
from flashsale.strategies import OrderStrategy


async def open_shared(database_url: str, s: ServiceSettings, context: HandlerContext) -> SharedAdmission:
    """Shared admission for this process, on `FLASHSALE_REDIS_URL` or the embedded Valkey (started if it is not)."""
    redis_url = await asyncio.to_thread(kv_connection.redis_url)
    metrics = context.metrics
    admission = SharedAdmission.connect(
        redis_url,
        namespace=database_namespace(database_url),
        user_rate=s.user_rate,
        user_burst=s.user_burst or None,
        queue_size=s.queue_size if s.accept == "async" else 0,
        processes=s.workers,
        fallback_queue=context.order_queue,
        probe_interval_s=s.probe_interval_s,
        on_open=lambda: metrics.admission_shared.set(0),
        on_close=lambda: metrics.admission_shared.set(1),
        on_overflow=metrics.queue_overflow.inc,
    )
    metrics.admission_shared.set(1)
    return admission


async def start_settlers(
    strategy: OrderStrategy, pool: AsyncConnectionPool, s: ServiceSettings, context: HandlerContext
) -> StreamSettlers:
    """The stream's consumers in this process (`queue_workers` of them), on a client of their own: each holds a
    connection while its read blocks; on the Redis and under the namespace shared admission found."""
    shared = context.shared
    assert shared is not None  # made by open_shared, which sets where Redis is
    assert shared.redis_url is not None
    assert shared.namespace is not None
    client = kv_connection.connect(shared.redis_url, socket_timeout=BLOCK_MS / 1000 + 5, retry=Retry(NoBackoff(), 0))
    stream = OrderStream(client, namespace=shared.namespace, size=s.queue_size)
    settlers = StreamSettlers(
        stream,
        strategy,
        pool,
        workers=s.queue_workers,
        claim_after_s=s.claim_after_s,
        retry_s=s.probe_interval_s,
        client=client,
    )
    await settlers.start()
    return settlers
