"""`flashsale serve` as a child process on a free loopback port, ready when `/health` says so, and stopped by its
pid: for the end-to-end tests, the benchmark, and anyone who wants a real server from a script or notebook.

    with ServerProcess(strategy="pessimistic", pool_size=8) as server:
        ... server.url ...
    with ServerProcess(settings=ServiceSettings(queue_size=100, accept="async")) as server: ...

With `workers=N` (`serve --workers N`), `pid` is the parent's, `worker_pids()` the workers' (the children that
listen on the port); ready means every worker listens, and `stop()` leaves no process of the service behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from flashsale.contract import HEALTH_PATH
from flashsale.http.settings import ServiceSettings
from flashsale.processes import ChildProcess


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just handed out and released; free unless someone else grabs it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(
        self,
        *,
        settings: ServiceSettings | None = None,
        strategy: str | None = None,
        pool_size: int | None = None,
        pool_timeout: float | None = None,
        max_waiting: int | None = None,
        access_log: bool = True,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60.0,
        workers: int | None = None,
        extra_args: list[str] | None = None,
        cpus: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        self.args = ["--host", self.host, "--port", str(self.port)]
        if settings is not None:  # every setting but the address, which is this server's
            self.args += settings.to_args(skip=("host", "port"))
        if strategy is not None:
            self.args += ["--strategy", strategy]
        if pool_size is not None:
            self.args += ["--pool-size", str(pool_size)]
        if pool_timeout is not None:
            self.args += ["--pool-timeout", str(pool_timeout)]
        if max_waiting is not None:
            self.args += ["--max-waiting", str(max_waiting)]
        if not access_log:
            self.args.append("--no-access-log")
        if workers is not None:
            self.args += ["--workers", str(workers)]
        if cpus is not None:
            self.args += ["--service-cpus", cpus]
        self.args += extra_args or []  # any other `serve` options, e.g. ["--queue-size", "1"]
        self.workers = workers or (settings.workers if settings is not None else 1)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.child: ChildProcess | None = None
        self.process: subprocess.Popen | None = None  # the child's, for signals and waits
        self._descendants: dict[int, psutil.Process] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def worker_pids(self) -> list[int]:
        """The processes listening on the port: the server itself, or its workers under `--workers N`."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            parent = psutil.Process(self.pid)
            candidates = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        return sorted(process.pid for process in candidates if self._listens(process))

    def _listens(self, process: psutil.Process) -> bool:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections)

    def start(self) -> ServerProcess:
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> ServerProcess:
        """Start the process without waiting for it to be ready (`stop()` it in any case)."""
        args = [sys.executable, "-m", "flashsale.cli.main", "serve", *self.args]
        self.child = ChildProcess("flashsale serve", args, log=self.log_path, env=self.env, role="service")
        self.process = self.child.popen
        return self

    def wait_ready(self) -> dict:
        """Poll `/health` until it answers 200 and every worker listens; returns the body of `/health`."""
        assert self.child is not None, "launch() first"
        deadline = time.monotonic() + self.ready_timeout
        health = None
        while time.monotonic() < deadline:
            if (code := self.child.poll()) is not None:
                raise self.child.failed(f"exited with status {code} before it was ready")
            if health is None:
                with (
                    contextlib.suppress(OSError, urllib.error.URLError),
                    urllib.request.urlopen(f"{self.url}{HEALTH_PATH}", timeout=2) as response,
                ):
                    if response.status == 200:
                        health = json.load(response)
            if health is not None and (self.workers == 1 or len(self.worker_pids()) == self.workers):
                self._remember_descendants()
                return health
            time.sleep(0.05)
        raise self.child.failed(f"was not ready after {self.ready_timeout:.0f} s")

    def _remember_descendants(self) -> None:
        """The service's processes now, so that `stop()` can still find them if the parent is gone by then."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.pid).children(recursive=True):
                self._descendants.setdefault(child.pid, child)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful shutdown: requests in flight finish), SIGKILL if it has not exited within `timeout`;
        the exit status (0 after a graceful shutdown)."""
        code = None
        if self.child is not None:
            if self.child.poll() is None:
                self._remember_descendants()
            code = self.child.stop(timeout)
            self._end_descendants(timeout)
        return code

    def _end_descendants(self, timeout: float) -> None:
        """Workers left behind by a parent that was killed: they drain by themselves once their parent is gone
        (see flashsale.serving.workers); those still there after `timeout` are killed, by pid."""
        # psutil.Process remembers each process's creation time, so a pid reused since is left alone.
        remembered = list(self._descendants.values())
        _, alive = psutil.wait_procs(remembered, timeout=timeout)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=timeout)
        self._descendants.clear()

    def log_lines(self) -> list[dict]:
        """The JSON log lines written so far (needs `log_path`)."""
        if self.log_path is None or not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_for_log(self, predicate, timeout: float = 10.0) -> list[dict]:
        """The log lines matching `predicate`, once there is at least one: the server writes a request's access
        line after its response has left, so a client that reads the log at once can be ahead of it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_lines() if predicate(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
