"""The order service as an ASGI application: `create_app(url, settings)` (`flashsale.http.settings`).

One `AsyncConnectionPool` is opened in the lifespan and waited for (so the server accepts no request before the
database is reachable), then the strategy is started on it; both are stopped at shutdown.

Under faults and overload every request gets a clear answer in bounded time: a request waits at most
`pool_timeout` for a connection, at most `max_waiting` requests wait at once (the next ones are refused at once,
503 `overloaded`), and once a request has seen the database connection fail, the `DatabaseGuard` refuses the next
ones at once, and those waiting for a connection too (503 `unavailable`), until its probe reaches the database
again; the pool then replaces its broken connections and the service carries on, without a restart.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from flashsale import strategies
from flashsale.admission import OrderQueue, UserRateLimiter
from flashsale.db.connection import DatabaseUnavailable, describe, make_pool
from flashsale.db.guard import DatabaseGuard
from flashsale.http import errors, openapi, routes
from flashsale.http.handler_context import HandlerContext
from flashsale.http.middleware import RequestMiddleware
from flashsale.http.settings import ServiceSettings
from flashsale.http.shared_metrics import MULTIPROC_DIR_ENV
from flashsale.services.sale_windows import SaleWindows
from flashsale.services.settlement import Settler
from flashsale.strategies import OrderStrategy

# How long the pool retries a lost connection before giving the slot up to the guard's probe (see make_pool).
RECONNECT_TIMEOUT_S = 0.5

log = logging.getLogger("flashsale.http")


def create_app(
    url: str,
    settings: ServiceSettings | None = None,
    *,
    strategy: str | OrderStrategy | None = None,
    shared_metrics: bool = False,
    **changes: Any,
) -> Starlette:
    """The application for the database at `url`, run with `settings` (`ServiceSettings`: the defaults, with
    `changes` to any of its fields), placing orders through `strategy` (a name, or an instance that replaces
    `settings.strategy`).

    A request waits at most `pool_timeout_s` for a free connection before it is answered 503, and at most
    `max_waiting` requests wait at once (0: no bound); startup waits `open_timeout_s` for the pool's first
    connections. `check_connections` tests each connection before use (one round trip) so that connections broken
    while the service was idle are replaced instead of failing a request; `probe_interval_s` is how often the
    guard tries the database while it is lost. `shared_metrics`: the application runs in one of several worker
    processes (`flashsale serve --workers N`), whose metrics are merged through prometheus-client's multiprocess
    mode (`PROMETHEUS_MULTIPROC_DIR` must be set before prometheus_client is imported).

    Admission control (`flashsale.admission`, off by default): `user_rate` > 0 refuses a user's orders beyond that
    many a second (burst as many) with 429; `queue_size` > 0 puts orders in a queue of that size in front of the
    strategy, served by `queue_workers` workers, and refuses them with 503 `queue_full` when it is full. At
    shutdown, orders a queue worker has begun get `stop_margin_s` to finish, so that their answers reach their
    clients.
    """
    if isinstance(strategy, str):
        changes["strategy"] = strategy
    settings = (settings or ServiceSettings()).replace(**changes)
    if not isinstance(strategy, OrderStrategy):
        strategy = strategies.get_strategy(settings.strategy)
    s = settings
    if shared_metrics and not os.environ.get(MULTIPROC_DIR_ENV):
        raise ValueError(f"shared metrics need {MULTIPROC_DIR_ENV} (a directory for every worker's metric files)")
    context = HandlerContext(strategy=strategy, shared_metrics=shared_metrics)
    if s.user_rate > 0 and s.admission == "local":
        context.rate_limiter = UserRateLimiter(s.user_rate, burst=s.user_burst or None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        guard = DatabaseGuard(url, probe_interval_s=s.probe_interval_s)
        pool = make_pool(
            url,
            size=s.pool_size,
            timeout=s.pool_timeout_s,
            max_waiting=s.max_waiting,
            check=s.check_connections,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            guard=guard,
        )
        try:
            await pool.open(wait=True, timeout=s.open_timeout_s)
        except PoolTimeout as exc:
            await pool.close()
            raise DatabaseUnavailable(f"cannot open {s.pool_size} connections to {describe(url)}: {exc}") from exc
        try:
            await strategy.start(pool)
            await strategy.warm_up(pool)
            context.pool, context.guard = pool, guard
            stream_shared = s.admission == "redis" and s.accept == "async" and s.queue_size > 0
            if s.queue_size:
                context.order_queue = OrderQueue(
                    # with the queue in Redis, this process's share of it serves while Redis is away
                    max(1, s.queue_size // s.workers) if stream_shared else s.queue_size,
                    s.queue_workers,
                    on_depth=context.metrics.queue_depth.set,
                    on_overflow=context.metrics.queue_overflow.inc,
                )
                await context.order_queue.start()
            if s.admission == "redis":
                from flashsale.http import shared_admission  # redis-py: for the services that share admission

                context.shared = await shared_admission.open_shared(url, s, context)
            if s.queue_size and s.accept == "async":
                assert context.order_queue is not None
                # with the stream, the sweep leaves each order to the stream's settlers for as long as they have
                min_age_s = s.claim_after_s if stream_shared else 0.0
                context.settler = Settler(strategy, pool, context.order_queue, min_age_s=min_age_s)
                await context.settler.start()
                if stream_shared:
                    context.stream_settlers = await shared_admission.start_settlers(strategy, pool, s, context)
                context.sale_windows = SaleWindows(url)
                await context.sale_windows.start()
            fields = {
                "strategy": strategy.name,
                "pool_size": s.pool_size,
                "pool_timeout_s": s.pool_timeout_s,
                "max_waiting": s.max_waiting,
                "queue_size": s.queue_size,
                "queue_workers": s.queue_workers if s.queue_size else 0,
                "user_rate": s.user_rate,
                "accept": s.accept,
                "admission": s.admission,
            }
            log.info("ready", extra={"fields": fields})
            try:
                async with context.metrics.serving():
                    yield
            finally:
                if context.sale_windows is not None:
                    await context.sale_windows.stop()
                if context.stream_settlers is not None:
                    await context.stream_settlers.stop(grace_s=s.stop_margin_s / 2)
                if context.settler is not None:
                    await context.settler.stop()
                if context.order_queue is not None:
                    # orders begun get half the stop margin, so that a worker under `--workers N` is done before
                    # its parent's kill; their answers then reach their clients
                    await context.order_queue.stop(grace_s=s.stop_margin_s / 2)
                if context.shared is not None:
                    await context.shared.aclose()
                context.pool = None
                await strategy.stop()
        finally:
            await guard.stop()
            await pool.close()

    async def handle_error(request: Request, exc: Exception) -> Response:
        if context.guard is not None:
            context.guard.observe(exc)
        return await errors.handle(request, exc)

    app = Starlette(
        routes=[endpoint.route() for endpoint in routes.ENDPOINTS],
        middleware=[Middleware(RequestMiddleware, metrics=context.metrics, access_log=s.access_log)],
        exception_handlers=dict.fromkeys(errors.HANDLED, handle_error),
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.openapi_json = json.dumps(openapi.document()).encode()  # served by routes.openapi_document
    return app
