"""`flashsale serve`: the order HTTP service on uvicorn (uvloop + httptools), logging JSON lines to stderr.

SIGTERM is a graceful shutdown: uvicorn stops accepting connections, lets the requests in flight finish (for up to
`--drain-timeout`, see flashsale.serving.process), then the lifespan stops the strategy and closes the pool, and
the exit status is 0 (Ctrl-C does the same, then exits with 130 as interrupted commands do). `EXIT_STATUSES` lists
every status, for `--help`.

`--workers N` (N > 1) serves from N processes on the one port, each with its own pool and strategy instance, under
a parent that starts, watches and stops them (see `flashsale.serving.workers`); `/metrics` then reports the totals
over every worker, whichever answers (see `flashsale.http.shared_metrics`).
"""

from __future__ import annotations

import argparse
import os

from flashsale import placement
from flashsale.cli.placement_options import add_placement_options, placement_from
from flashsale.db.migrate import ready_url
from flashsale.http.settings import ServiceSettings
from flashsale.serving import EXIT_NOT_STARTED, EXIT_UNCLEAN_STOP, EXIT_WORKERS_LOST

EXIT_STATUSES = f"""exit status:
  0    stopped by SIGTERM, every request drained
  2    bad options
  {EXIT_NOT_STARTED}    not started: the port is taken, the database cannot be reached, or a worker did not start
  {EXIT_WORKERS_LOST}    --workers N: every worker exited by itself (none left to serve)
  {EXIT_UNCLEAN_STOP}    --workers N: stopped, but a worker did not exit with 0 (it had died, or it was killed after
       --drain-timeout and --stop-margin)
  130  interrupted (Ctrl-C, SIGINT), after the same drain"""


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the order HTTP service",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ServiceSettings.add_arguments(serve)
    add_placement_options(serve, "db", "service", named=False)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from flashsale.http import log
    from flashsale.load.placing import database_placed
    from flashsale.serving.process import ServeSettings, serve_in_this_process

    service = ServiceSettings.from_args(args)  # refused before anything starts, the options named as typed
    settings = ServeSettings(url=ready_url(), service=service)
    log.configure()
    cpus = placement_from(args)
    if cpus.service_cpus is not None:  # its own, else the database's; before any worker starts: they inherit it
        placement.pin(os.getpid(), cpus.service_cpus)
    with database_placed(settings.url, cpus.db):
        if service.workers == 1:
            return serve_in_this_process(settings)
        from flashsale.serving.workers import serve_workers

        return serve_workers(settings)
