"""The order service as an ASGI application: `create_app(url, strategy=..., pool_size=...)`.

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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from psycopg_pool import PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flashsale import strategies
from flashsale.admission import OrderQueue, UserRateLimiter
from flashsale.db.connection import DatabaseUnavailable, describe, make_pool
from flashsale.db.guard import DatabaseGuard
from flashsale.http import errors, openapi
from flashsale.http.flash_sale_handler import get_flash_sale
from flashsale.http.handler_context import HandlerContext
from flashsale.http.health_handler import health
from flashsale.http.middleware import RequestMiddleware
from flashsale.http.order_handler import get_order, get_order_status, place_order
from flashsale.http.shared_metrics import MULTIPROC_DIR_ENV
from flashsale.http.user_handler import list_user_ids, list_users
from flashsale.settlement import Settler
from flashsale.strategies import OrderStrategy

DEFAULT_POOL_SIZE = 8  # the issue measured 5-10 connections as best for one hot row
DEFAULT_POOL_TIMEOUT_S = 5.0
DEFAULT_OPEN_TIMEOUT_S = 30.0  # default of --open-timeout: startup's wait for the pool's connections
DEFAULT_MAX_WAITING = 1000  # requests queued for a connection; as many as the load runner keeps in flight
# How long the pool retries a lost connection before giving the slot up to the guard's probe (see make_pool).
RECONNECT_TIMEOUT_S = 0.5

log = logging.getLogger("flashsale.http")


def _setting(field: str) -> str:
    return field.replace("_", " ")


def check_settings(
    *,
    pool_size: int,
    pool_timeout: float,
    max_waiting: int,
    queue_size: int,
    queue_workers: int,
    user_rate: float,
    accept: str,
    name: Callable[[str], str] = _setting,
) -> None:
    """Refuse settings the service cannot run with (`ValueError`), each setting called by `name(field)`: `create_app`
    says "queue size", `flashsale serve` its option, "--queue-size", and checks before it starts any process."""
    if pool_size < 1:
        raise ValueError(f"{name('pool_size')} must be at least 1, got {pool_size}")
    if not pool_timeout > 0:
        raise ValueError(f"{name('pool_timeout')} must be positive, got {pool_timeout}")
    if max_waiting < 0:
        raise ValueError(f"{name('max_waiting')} must be 0 (no bound) or more, got {max_waiting}")
    if queue_size < 0:
        raise ValueError(f"{name('queue_size')} must be 0 (no queue) or more, got {queue_size}")
    if queue_workers < 1:
        raise ValueError(f"{name('queue_workers')} must be at least 1, got {queue_workers}")
    if not user_rate >= 0:
        raise ValueError(f"{name('user_rate')} must be 0 (no limit) or more, got {user_rate}")
    if accept not in ("sync", "async"):
        raise ValueError(f"{name('accept')} must be sync or async, got {accept!r}")
    if accept == "async" and not queue_size:
        raise ValueError(f"{name('accept')} async needs the order queue: give {name('queue_size')} 1 or more")
    if accept == "async" and pool_size <= queue_workers:
        raise ValueError(
            f"{name('accept')} async needs more connections than queue workers (each settlement holds one while the "
            f"strategy uses another): {name('pool_size')} {pool_size}, {name('queue_workers')} {queue_workers}"
        )


def create_app(
    url: str,
    *,
    strategy: str | OrderStrategy = strategies.DEFAULT_STRATEGY,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT_S,
    open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    max_waiting: int = DEFAULT_MAX_WAITING,
    check_connections: bool = True,
    probe_interval_s: float = 0.25,
    access_log: bool = True,
    shared_metrics: bool = False,
    queue_size: int = 0,
    queue_workers: int = 1,
    user_rate: float = 0.0,
    accept: str = "sync",
) -> Starlette:
    """The application for the database at `url`, placing orders through `strategy` (a name or an instance).

    `pool_timeout` bounds how long a request waits for a free connection before it is answered 503;
    `max_waiting` how many requests may wait at once (0: no bound); `open_timeout` how long startup waits for
    the pool's first connections. `check_connections` tests each connection before use (one round trip) so that
    connections broken while the service was idle are replaced instead of failing a request; `probe_interval_s`
    is how often the guard tries the database while it is lost. `shared_metrics`: the application runs in one of
    several worker processes (`flashsale serve --workers N`), whose metrics are merged through prometheus-client's
    multiprocess mode (`PROMETHEUS_MULTIPROC_DIR` must be set before prometheus_client is imported).

    Admission control (`flashsale.admission`, off by default): `user_rate` > 0 refuses a user's orders beyond that
    many a second (burst as many) with 429; `queue_size` > 0 puts orders in a queue of that size in front of the
    strategy, served by `queue_workers` workers, and refuses them with 503 `queue_full` when it is full.
    """
    check_settings(
        pool_size=pool_size,
        pool_timeout=pool_timeout,
        max_waiting=max_waiting,
        queue_size=queue_size,
        queue_workers=queue_workers,
        user_rate=user_rate,
        accept=accept,
    )
    if shared_metrics and not os.environ.get(MULTIPROC_DIR_ENV):
        raise ValueError(f"shared metrics need {MULTIPROC_DIR_ENV} (a directory for every worker's metric files)")
    if isinstance(strategy, str):
        strategy = strategies.get_strategy(strategy)
    context = HandlerContext(strategy=strategy, shared_metrics=shared_metrics)
    if user_rate > 0:
        context.rate_limiter = UserRateLimiter(user_rate)
    openapi_json = json.dumps(openapi.document()).encode()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        guard = DatabaseGuard(url, probe_interval_s=probe_interval_s)
        pool = make_pool(
            url,
            size=pool_size,
            timeout=pool_timeout,
            max_waiting=max_waiting,
            check=check_connections,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
            guard=guard,
        )
        try:
            await pool.open(wait=True, timeout=open_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise DatabaseUnavailable(f"cannot open {pool_size} connections to {describe(url)}: {exc}") from exc
        try:
            await strategy.start(pool)
            await strategy.warm_up(pool)
            context.pool, context.guard = pool, guard
            if queue_size:
                context.order_queue = OrderQueue(
                    queue_size,
                    queue_workers,
                    on_depth=context.metrics.queue_depth.set,
                    on_overflow=context.metrics.queue_overflow.inc,
                )
                await context.order_queue.start()
                if accept == "async":
                    context.settler = Settler(strategy, pool, context.order_queue)
                    await context.settler.start()
            fields = {
                "strategy": strategy.name,
                "pool_size": pool_size,
                "pool_timeout_s": pool_timeout,
                "max_waiting": max_waiting,
                "queue_size": queue_size,
                "queue_workers": queue_workers if queue_size else 0,
                "user_rate": user_rate,
                "accept": accept,
            }
            log.info("ready", extra={"fields": fields})
            try:
                async with context.metrics.serving():
                    yield
            finally:
                if context.settler is not None:
                    await context.settler.stop()
                if context.order_queue is not None:
                    await context.order_queue.stop()
                context.pool = None
                await strategy.stop()
        finally:
            await guard.stop()
            await pool.close()

    async def handle_error(request: Request, exc: Exception) -> Response:
        if context.guard is not None:
            context.guard.observe(exc)
        return await errors.handle(request, exc)

    async def openapi_endpoint(request: Request) -> Response:
        return Response(openapi_json, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/api/orders", place_order, methods=["POST"]),
            Route("/api/orders/{order_id}", get_order, methods=["GET"]),
            Route("/api/flash-sales/{flash_sale_id}", get_flash_sale, methods=["GET"]),
            Route("/api/users", list_user_ids, methods=["GET"]),
            # The original's contract (FlashDeal), so that its k6 scripts run unchanged.
            Route("/orders", place_order, methods=["POST"]),
            Route("/orders/{order_id}/status", get_order_status, methods=["GET"]),
            Route("/users", list_users, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", context.metrics.endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(RequestMiddleware, metrics=context.metrics, access_log=access_log)],
        exception_handlers=dict.fromkeys(errors.HANDLED, handle_error),
        lifespan=lifespan,
    )
    app.state.context = context
    return app
