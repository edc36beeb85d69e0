"""How `flashsale serve` runs the application on uvicorn (uvloop + httptools): the settings one server process
needs (a picklable value, so that a worker process can be handed them), its uvicorn configuration, and the server
in this process (`--workers 1`; several workers: `flashsale.serving.workers`).

SIGTERM is a graceful shutdown: uvicorn stops accepting connections, lets the requests in flight finish (for up to
`drain_timeout_s`, `serve --drain-timeout`, then cancels them), then the lifespan stops the strategy and closes the
pool, and the exit status is 0.

The port is bound here before the lifespan opens the pool, without SO_REUSEPORT: a port anyone listens on (another
`flashsale serve`, with or without `--workers`) is EXIT_NOT_STARTED at once, as under `--workers N`.
"""

from __future__ import annotations

import logging
import signal
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flashsale.http.app import create_app
from flashsale.http.settings import ServiceSettings
from flashsale.serving import EXIT_NOT_STARTED

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette


log = logging.getLogger("flashsale.serving.process")


@dataclass(frozen=True)
class ServeSettings:
    """One server's settings and the database it serves: a picklable value, handed to each worker process."""

    url: str
    service: ServiceSettings

    def app(self, *, shared_metrics: bool = False) -> Starlette:
        return create_app(self.url, self.service, shared_metrics=shared_metrics)

    def uvicorn_config(self, app: Starlette) -> uvicorn.Config:
        import uvicorn

        return uvicorn.Config(
            app,
            host=self.service.host,
            port=self.service.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,  # ours is structured and carries the request id (see flashsale.http.middleware)
            log_config=None,  # keep the JSON logging configured by flashsale.http.log
            server_header=False,
            # uvicorn declares an int, and uses it as asyncio.timeout's delay: a float is what it needs.
            timeout_graceful_shutdown=self.service.drain_timeout_s,  # type: ignore[arg-type]
        )


def serve_in_this_process(settings: ServeSettings) -> int:
    """Serve until SIGTERM (0) or Ctrl-C (KeyboardInterrupt); EXIT_NOT_STARTED if the port is taken or the lifespan
    failed."""
    import uvicorn

    try:
        sock = bind_port(settings.service.host, settings.service.port)
    except OSError as exc:
        log.error(f"cannot bind {settings.service.host}:{settings.service.port}: {exc}")
        return EXIT_NOT_STARTED
    server = uvicorn.Server(settings.uvicorn_config(settings.app()))
    # uvicorn handles SIGTERM itself while it serves (graceful shutdown), then restores the handler found here and
    # raises the signal again: this one turns that into a normal exit, so that a drained service exits with 0.
    signal.signal(signal.SIGTERM, exit_after_shutdown)
    # Ctrl-C: the same, but the re-raised SIGINT must end in KeyboardInterrupt (exit 130). Left to asyncio's runner,
    # whose handler only cancels the main task, it was lost whenever uvloop ran the handler after that task had
    # ended (a busy machine): the service then exited 0. This one notes it, and the interruption is raised here.
    interrupted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    with sock:
        server.run(sockets=[sock])  # when the lifespan fails, uvicorn exits with STARTUP_FAILURE (EXIT_NOT_STARTED)
    if interrupted:
        raise KeyboardInterrupt
    return 0 if server.started else EXIT_NOT_STARTED


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to the port without SO_REUSEPORT, not yet listening: it fails if anyone listens there, with
    SO_REUSEPORT or not (SO_REUSEADDR only lets it bind over connections closing in TIME_WAIT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)
