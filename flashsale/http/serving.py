"""How `flashsale serve` runs the application on uvicorn (uvloop + httptools): the settings one server process
needs (a picklable value, so that a worker process can be handed them), its uvicorn configuration, and the server
in this process (`--workers 1`; several workers: `flashsale.http.workers`).

SIGTERM is a graceful shutdown: uvicorn stops accepting connections, lets the requests in flight finish (for up to
`GRACEFUL_SHUTDOWN_S`), then the lifespan stops the strategy and closes the pool, and the exit status is 0.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn
    from starlette.applications import Starlette

# Exit status when the server could not start (the lifespan failed: in practice, the database).
EXIT_NOT_STARTED = 3
GRACEFUL_SHUTDOWN_S = 10


@dataclass(frozen=True)
class ServeSettings:
    url: str
    strategy: str
    pool_size: int
    pool_timeout: float
    max_waiting: int
    access_log: bool
    host: str
    port: int
    workers: int = 1
    queue_size: int = 0
    queue_workers: int = 1
    user_rate: float = 0.0
    accept: str = "sync"

    def app(self, *, shared_metrics: bool = False) -> Starlette:
        from flashsale.http import create_app

        return create_app(
            self.url,
            strategy=self.strategy,
            pool_size=self.pool_size,
            pool_timeout=self.pool_timeout,
            max_waiting=self.max_waiting,
            access_log=self.access_log,
            shared_metrics=shared_metrics,
            queue_size=self.queue_size,
            queue_workers=self.queue_workers,
            user_rate=self.user_rate,
            accept=self.accept,
        )

    def uvicorn_config(self, app: Starlette) -> uvicorn.Config:
        import uvicorn

        return uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,  # ours is structured and carries the request id (see flashsale.http.middleware)
            log_config=None,  # keep the JSON logging configured by flashsale.http.log
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )


def serve_in_this_process(settings: ServeSettings) -> int:
    """Serve until SIGTERM (0) or Ctrl-C (KeyboardInterrupt); EXIT_NOT_STARTED if the lifespan failed."""
    import uvicorn

    server = uvicorn.Server(settings.uvicorn_config(settings.app()))
    # uvicorn handles SIGTERM itself while it serves (graceful shutdown), then restores the handler found here and
    # raises the signal again: this one turns that into a normal exit, so that a drained service exits with 0.
    signal.signal(signal.SIGTERM, exit_after_shutdown)
    server.run()  # when the lifespan fails, uvicorn exits with its STARTUP_FAILURE, which is EXIT_NOT_STARTED
    return 0 if server.started else EXIT_NOT_STARTED


def exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)
