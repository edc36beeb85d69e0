"""`flashsale serve --workers N`: N server processes on one port, each with its own connection pool and strategy
instance (`batched` keeps a queue per process; the database still decides), under a parent that starts them,
watches them and stops them.

- Each worker has its own listening socket. The parent binds all N with SO_REUSEPORT before any worker starts (so
  that a port in use is reported once, by the parent) and hands each to its worker; the kernel spreads incoming
  connections over the listening sockets by a hash of the connection's addresses. uvicorn's own supervisor
  (`uvicorn.supervisors.Multiprocess`) shares one socket among its workers instead: every idle worker is woken for
  each connection and the first to accept wins, which can give one worker most of a load run's long-lived
  keep-alive connections; it also respawns a worker that dies after startup, without end. A bound socket joins the
  port only when its worker listens, at the end of its startup (after its pool is open), so no connection is
  routed to a worker that is not serving. Before binding, the parent claims the port once without SO_REUSEPORT:
  a second `serve --workers` on the same port fails there instead of sharing the port with the first.
- Workers are fresh interpreters (multiprocessing "spawn"), not forks: prometheus-client chooses its multiprocess
  storage when it is imported (the parent has imported it already), and nothing of the parent's state is inherited.
- The parent closes its copy of each socket once its worker has it: a worker's death then closes its socket, and
  the kernel stops routing connections to it (a copy left open would take connections that nobody accepts).
- Startup: every worker opens its pool (the lifespan), listens, and says so on its link (a pipe to the parent). If
  a worker exits before all are serving, the others are stopped and the parent exits with EXIT_NOT_STARTED: the
  service starts on all N workers or not at all, and a broken start is not retried.
- Serving: a worker that exits is logged (pid, exit status) and not replaced; the others carry on. When none is
  left, the parent exits with EXIT_WORKERS_LOST (4). A worker whose parent is gone (its link closes) drains and exits.
- SIGTERM (or Ctrl-C) to the parent: SIGTERM to every worker; each drains like a single server (uvicorn's graceful
  shutdown, then the lifespan closes its pool); the parent exits 0 once every worker has exited 0, or kills those
  still running after the drain timeout and the stop margin (`--drain-timeout`, `--stop-margin`); if any worker did
  not exit with 0 (killed, or dead before the stop), it exits EXIT_UNCLEAN_STOP (5). Ctrl-C then exits 130, as
  interrupted commands do.
- Metrics: the parent makes a fresh PROMETHEUS_MULTIPROC_DIR (in the temporary directory, `TMPDIR`) for the
  workers' metric files and removes it at exit (a parent killed by SIGKILL leaves it behind), see
  `flashsale.http.shared_metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import uvicorn
from prometheus_client import multiprocess

from flashsale.http import log as json_log
from flashsale.http.shared_metrics import MULTIPROC_DIR_ENV
from flashsale.serving import EXIT_NOT_STARTED, EXIT_UNCLEAN_STOP, EXIT_WORKERS_LOST
from flashsale.serving.process import ServeSettings, bind_port, exit_after_shutdown

log = logging.getLogger("flashsale.serving.workers")


def serve_workers(settings: ServeSettings) -> int:
    """Serve on `settings.service.workers` processes until SIGTERM (0) or Ctrl-C (KeyboardInterrupt, once all
    stopped)."""
    try:
        sockets = bind_sockets(settings.service.host, settings.service.port, settings.service.workers)
    except OSError as exc:
        log.error(f"cannot bind {settings.service.host}:{settings.service.port}: {exc}")
        return EXIT_NOT_STARTED
    metrics_dir = tempfile.mkdtemp(prefix="flashsale-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir
    try:
        with SignalPipe() as signals:
            supervisor = Supervisor(settings, signals, metrics_dir)
            status = supervisor.run(sockets)
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if supervisor.stopped_by == signal.SIGINT:
        raise KeyboardInterrupt
    return status


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets bound to one port with SO_REUSEPORT, not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_port(host, port).close()  # the claim: fails if anyone listens there, SO_REUSEPORT or not
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class SignalPipe:
    """SIGTERM and SIGINT as bytes on a socket, so that the parent waits for signals and workers in one `wait`."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> SignalPipe:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in self.SIGNALS}
        return self

    def received(self) -> list[int]:
        try:
            return [sig for sig in self.reader.recv(64) if sig in self.SIGNALS]
        except BlockingIOError:
            return []

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self.reader.close()
        self._writer.close()


@dataclass
class ServiceWorker:
    process: BaseProcess
    link: Connection  # the parent's end: the worker says here when it serves; it sees the parent gone at EOF
    serving: bool = False

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "a worker's process is started when it is made"
        return self.process.pid


class Supervisor:
    def __init__(self, settings: ServeSettings, signals: SignalPipe, metrics_dir: str) -> None:
        self.settings = settings
        self.signals = signals
        self.metrics_dir = metrics_dir
        self.workers: list[ServiceWorker] = []
        self.stopped_by: int | None = None

    def run(self, sockets: list[socket.socket]) -> int:
        context = multiprocessing.get_context("spawn")
        try:
            for sock in sockets:
                self.workers.append(self._start(context, sock))
            if not self._until_all_serve():
                return EXIT_NOT_STARTED
            if self.stopped_by is None:
                pids = [w.pid for w in self.workers]
                log.info("serving", extra={"fields": {"workers": len(pids), "pids": pids}})
                self._until_stopped()
        finally:
            clean = self._stop()
        if self.stopped_by is None:  # every worker exited by itself
            return EXIT_WORKERS_LOST
        return 0 if clean else EXIT_UNCLEAN_STOP

    def _start(self, context: multiprocessing.context.SpawnContext, sock: socket.socket) -> ServiceWorker:
        link, child_link = context.Pipe()
        process = context.Process(target=run_worker, args=(self.settings, sock, child_link), name="flashsale-worker")
        process.start()
        # The worker holds its own copies now (passed at its exec): see the module docstring for why these close.
        sock.close()
        child_link.close()
        return ServiceWorker(process, link)

    def _until_all_serve(self) -> bool:
        """True once every worker serves, or when a signal came first (`stopped_by`); False if one exited first."""
        while not all(w.serving for w in self.workers):
            starting = {w.link: w for w in self.workers if not w.serving}
            exits = {w.process.sentinel: w for w in self.workers}
            ready = wait([self.signals.reader, *starting, *exits])
            if self._signalled(ready):
                return True
            for link in [r for r in ready if isinstance(r, Connection) and r in starting]:
                try:
                    link.recv()
                    starting[link].serving = True
                except EOFError:  # it is exiting: its sentinel tells
                    pass
            if failed := [exits[s] for s in ready if isinstance(s, int) and s in exits]:
                for w in failed:
                    w.process.join()
                    log.error("worker failed to start", extra={"fields": self._exit_fields(w)})
                return False
        return True

    def _until_stopped(self) -> None:
        """Until a signal; workers that exit meanwhile are reported. Returns at once if none is left."""
        live = {w.process.sentinel: w for w in self.workers}
        while live:
            ready = wait([self.signals.reader, *live])
            if self._signalled(ready):
                return
            for sentinel in [r for r in ready if isinstance(r, int) and r in live]:
                worker = live.pop(sentinel)
                worker.process.join()
                multiprocess.mark_process_dead(worker.pid, self.metrics_dir)
                log.error("worker exited", extra={"fields": {**self._exit_fields(worker), "workers_left": len(live)}})

    def _signalled(self, ready: list) -> bool:
        if self.signals.reader in ready and (received := self.signals.received()):
            self.stopped_by = received[0]
            log.info("stopping", extra={"fields": {"signal": signal.Signals(self.stopped_by).name}})
            return True
        return False

    def _stop(self) -> bool:
        """SIGTERM to the workers still running, wait for them to drain, kill those that do not; True if every
        worker exited with 0."""
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        deadline = time.monotonic() + self.settings.service.drain_timeout_s + self.settings.service.stop_margin_s
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                log.error("worker did not stop in time: killed", extra={"fields": {"pid": worker.pid}})
                worker.process.kill()
                worker.process.join()
            worker.link.close()
        return all(w.process.exitcode == 0 for w in self.workers)

    @staticmethod
    def _exit_fields(worker: ServiceWorker) -> dict:
        code = worker.process.exitcode
        died_of = signal.Signals(-code).name if code is not None and code < 0 else None
        return {"pid": worker.pid, "exit_status": code, "signal": died_of}


class WorkerServer(uvicorn.Server):
    """uvicorn's server, telling the parent when it serves and draining when the parent is gone."""

    def __init__(self, config: uvicorn.Config, link: Connection) -> None:
        super().__init__(config)
        self.link = link

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # exits with EXIT_NOT_STARTED if the lifespan failed
        if not self.started:
            return
        self.link.send(os.getpid())
        # The parent never writes: the link turns readable only when the parent's end closes.
        asyncio.get_running_loop().add_reader(self.link.fileno(), self._parent_gone)

    def _parent_gone(self) -> None:
        asyncio.get_running_loop().remove_reader(self.link.fileno())
        log.warning("the parent process is gone: draining")
        self.should_exit = True


def run_worker(settings: ServeSettings, sock: socket.socket, link: Connection) -> None:
    """The body of a worker process."""
    json_log.configure()
    # The parent stops the workers with SIGTERM; Ctrl-C reaches the whole process group, and the parent's SIGTERM
    # follows it, so a worker does not need to act on it before it serves (while it serves, uvicorn handles both).
    signal.signal(signal.SIGTERM, exit_after_shutdown)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = WorkerServer(settings.uvicorn_config(settings.app(shared_metrics=True)), link)
    server.run(sockets=[sock])
