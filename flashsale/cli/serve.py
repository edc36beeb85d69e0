"""`flashsale serve`: the order HTTP service on uvicorn (uvloop + httptools), logging JSON lines to stderr.

SIGTERM is a graceful shutdown: uvicorn stops accepting connections, lets the requests in flight finish (for up to
`--drain-timeout`, see flashsale.http.serving), then the lifespan stops the strategy and closes the pool, and
the exit status is 0 (Ctrl-C does the same, then exits with 130 as interrupted commands do). `EXIT_STATUSES` lists
every status, for `--help`.

`--workers N` (N > 1) serves from N processes on the one port, each with its own pool and strategy instance, under
a parent that starts, watches and stops them (see `flashsale.http.workers`); `/metrics` then reports the totals
over every worker, whichever answers (see `flashsale.http.shared_metrics`).
"""

from __future__ import annotations

import argparse
import os

from flashsale import placement, strategies
from flashsale.cli.placement_options import add_placement_options, placement_from
from flashsale.db.migrate import ready_url
from flashsale.http.serving import (
    DEFAULT_OPEN_TIMEOUT_S,
    EXIT_NOT_STARTED,
    EXIT_UNCLEAN_STOP,
    EXIT_WORKERS_LOST,
    GRACEFUL_SHUTDOWN_S,
    STOP_MARGIN_S,
)
from flashsale.units import seconds

EXIT_STATUSES = f"""exit status:
  0    stopped by SIGTERM, every request drained
  2    bad options
  {EXIT_NOT_STARTED}    not started: the port is taken, the database cannot be reached, or a worker did not start
  {EXIT_WORKERS_LOST}    --workers N: every worker exited by itself (none left to serve)
  {EXIT_UNCLEAN_STOP}    --workers N: stopped, but a worker did not exit with 0 (it had died, or it was killed after
       --drain-timeout and --stop-margin)
  130  interrupted (Ctrl-C, SIGINT), after the same drain"""


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the order HTTP service",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=port, default=8000, help="TCP port (default 8000)")
    serve.add_argument(
        "--strategy", default=strategies.DEFAULT_STRATEGY, choices=strategies.names(), help="locking strategy"
    )
    serve.add_argument("--pool-size", type=int, default=8, help="database connections (default 8)")
    serve.add_argument(
        "--pool-timeout",
        type=seconds,
        default="5s",
        help="how long a request waits for a free connection before a 503 (default 5s; e.g. 500ms)",
    )
    serve.add_argument(
        "--max-waiting",
        type=int,
        default=1000,
        help="requests that may wait for a connection at once; more get a 503 at once (default 1000; 0: no bound)",
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes on the port, each with its own pool of --pool-size connections and its own strategy "
        "instance (default 1: this process serves)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=seconds,
        default=f"{GRACEFUL_SHUTDOWN_S:g}s",
        help="at SIGTERM, how long the requests in flight may take to finish before they are cancelled "
        f"(default {GRACEFUL_SHUTDOWN_S:g}s)",
    )
    serve.add_argument(
        "--stop-margin",
        type=seconds,
        default=f"{STOP_MARGIN_S:g}s",
        help="--workers N: how long after --drain-timeout the parent waits for a stopping worker before it kills it "
        f"(default {STOP_MARGIN_S:g}s)",
    )
    serve.add_argument(
        "--open-timeout",
        type=seconds,
        default=f"{DEFAULT_OPEN_TIMEOUT_S:g}s",
        help="at startup, how long each server process waits for its pool's connections before it gives up with "
        f"exit status 3 (default {DEFAULT_OPEN_TIMEOUT_S:g}s)",
    )
    serve.add_argument(
        "--queue-size",
        type=int,
        default=0,
        help="orders that may wait in an in-process queue in front of the strategy; more get a 503 queue_full at "
        "once (default 0: no queue, every request goes to the strategy; per server process)",
    )
    serve.add_argument(
        "--queue-workers", type=positive_int, default=1, help="workers taking orders from the queue (default 1)"
    )
    serve.add_argument(
        "--user-rate",
        type=float,
        default=0.0,
        help="orders per second per user (a token bucket, burst as many); more get a 429 rate_limited before any "
        "database work (default 0: no limit; per server process)",
    )
    serve.add_argument(
        "--accept",
        choices=["sync", "async"],
        default="sync",
        help="sync: answer an order once placed (201); async: store it as PENDING and answer 202 with its status URL "
        "at once, the queue's workers settle it (needs --queue-size; default sync)",
    )
    serve.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no log line per request (for load runs)"
    )
    add_placement_options(serve, "db", "service", named=False)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from flashsale.http import log
    from flashsale.http.app import check_settings
    from flashsale.http.serving import ServeSettings, serve_in_this_process
    from flashsale.load.placing import database_placed

    check_settings(
        pool_size=args.pool_size,
        pool_timeout=args.pool_timeout,
        max_waiting=args.max_waiting,
        queue_size=args.queue_size,
        queue_workers=args.queue_workers,
        user_rate=args.user_rate,
        accept=args.accept,
        name=lambda field: "--" + field.replace("_", "-"),
    )
    for option, value in (
        ("--drain-timeout", args.drain_timeout),
        ("--stop-margin", args.stop_margin),
        ("--open-timeout", args.open_timeout),
    ):
        if not value >= 0:
            raise ValueError(f"{option} must be 0 or more, got {value:g}s")
    settings = ServeSettings(
        url=ready_url(),
        strategy=args.strategy,
        pool_size=args.pool_size,
        pool_timeout=args.pool_timeout,
        max_waiting=args.max_waiting,
        access_log=args.access_log,
        host=args.host,
        port=args.port,
        workers=args.workers,
        queue_size=args.queue_size,
        queue_workers=args.queue_workers,
        user_rate=args.user_rate,
        accept=args.accept,
        drain_timeout_s=args.drain_timeout,
        stop_margin_s=args.stop_margin,
        open_timeout_s=args.open_timeout,
    )
    log.configure()
    cpus = placement_from(args)
    if cpus.service_cpus is not None:  # its own, else the database's; before any worker starts: they inherit it
        placement.pin(os.getpid(), cpus.service_cpus)
    with database_placed(settings.url, cpus.db):
        if settings.workers == 1:
            return serve_in_this_process(settings)
        from flashsale.http.workers import serve_workers

        return serve_workers(settings)
