"""The server a load run starts for `--target http` without `--base-url`: `flashsale serve` on a free loopback port
(a `ServerProcess`) with its log in a temporary file, started before the run and stopped after it, with its CPU use
measured: that of the server process and of all its descendants (the workers under `--workers N`)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import psutil

from flashsale import config
from flashsale.http.settings import ServiceSettings
from flashsale.serving.server_process import ServerProcess


class MeasuredServer:
    """`flashsale serve` with `settings` (`ServiceSettings`; on a free port) on the database at `database_url`, on
    CPUs `cpus`."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        database_url: str,
        startup_timeout_s: float = 60.0,
        cpus: str | None = None,
    ) -> None:
        self._logs = tempfile.TemporaryDirectory(prefix="flashsale-serve-")
        self.log_path = Path(self._logs.name) / "serve.log"
        self.server = ServerProcess(
            settings=settings,
            log_path=self.log_path,
            env={config.DATABASE_URL_ENV: database_url},
            ready_timeout=startup_timeout_s,
            cpus=cpus,
        )
        self._cpu_start: float | None = None
        self._wall_start: float | None = None

    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int | None:
        return self.server.pid

    async def start(self) -> str:
        """Start the service and wait until `/health` answers (in a thread: the wait blocks); its base URL."""
        await asyncio.to_thread(self.server.start)  # ChildFailed, with the end of its log, if it was not ready
        self.mark_cpu()
        return self.base_url

    async def stop(self) -> None:
        """SIGTERM to the service's process, then SIGKILL after a timeout, by its pid; workers it left behind (if it
        was killed) are ended by theirs (see ServerProcess.stop)."""
        await asyncio.to_thread(self.server.stop)
        self._logs.cleanup()

    def mark_cpu(self) -> None:
        """Start measuring the service's CPU use from now."""
        with contextlib.suppress(psutil.Error, TypeError):
            self._cpu_start, self._wall_start = cpu_seconds(psutil.Process(self.pid)), time.perf_counter()

    def cpu_percent(self) -> float | None:
        """CPU used by the service (every process of it) since `mark_cpu()`, in percent of one core (None once it
        has stopped)."""
        if self._cpu_start is None or self._wall_start is None:
            return None
        with contextlib.suppress(psutil.Error):
            used = cpu_seconds(psutil.Process(self.pid)) - self._cpu_start
            wall = time.perf_counter() - self._wall_start
            return 100.0 * used / wall if wall > 0 else None
        return None


def cpu_seconds(root: psutil.Process) -> float:
    """CPU time of `root` and of all its descendants: those running, and those that have exited and been waited
    for (the `children_*` times of their parent), so that a worker's time still counts once it has exited."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            if process is root:
                raise
            continue  # exited since it was listed: its time now shows in its parent's children_* times
        total += times.user + times.system + times.children_user + times.children_system
    return total
