"""`flashsale serve`: the order HTTP service on uvicorn (uvloop + httptools), logging JSON lines to stderr.

SIGTERM is a graceful shutdown: uvicorn stops accepting connections, lets the requests in flight finish (for up to
`GRACEFUL_SHUTDOWN_S`), then the lifespan stops the strategy and closes the pool, and the exit status is 0
(Ctrl-C does the same, then exits with 130 as interrupted commands do).
"""

from __future__ import annotations

import argparse
import signal

from flashsale import strategies
from flashsale.cli.db import ready_url
from flashsale.units import seconds

# Exit status when the server could not start (the lifespan failed: in practice, the database).
EXIT_NOT_STARTED = 3
GRACEFUL_SHUTDOWN_S = 10


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(text)
    return value


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="run the order HTTP service")
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
        "--no-access-log", dest="access_log", action="store_false", help="no log line per request (for load runs)"
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from flashsale.http import create_app, log

    if args.pool_size < 1:
        raise ValueError(f"--pool-size must be at least 1, got {args.pool_size}")
    if args.pool_timeout <= 0:
        raise ValueError(f"--pool-timeout must be positive, got {args.pool_timeout}")
    if args.max_waiting < 0:
        raise ValueError(f"--max-waiting must be 0 (no bound) or more, got {args.max_waiting}")
    url = ready_url()
    log.configure()
    app = create_app(
        url,
        strategy=args.strategy,
        pool_size=args.pool_size,
        pool_timeout=args.pool_timeout,
        max_waiting=args.max_waiting,
        access_log=args.access_log,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # ours is structured and carries the request id (see flashsale.http.middleware)
        log_config=None,  # keep the JSON logging configured above
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM itself while it serves (graceful shutdown), then restores the handler found here and
    # raises the signal again: this one turns that into a normal exit, so that a drained service exits with 0.
    signal.signal(signal.SIGTERM, _exit_after_shutdown)
    server.run()
    return 0 if server.started else EXIT_NOT_STARTED


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)
