"""The order service for `--target http` without `--base-url`: `flashsale serve` on a free loopback port (the
service's own `ServerProcess`), started before the run and stopped after it, with its CPU use measured."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import psutil

from flashsale import config
from flashsale.http.server_process import ServerNotReady, ServerProcess


class ServiceFailed(RuntimeError):
    """The service did not become ready; `output` holds the last lines it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        last = output.strip().splitlines()[-1:] if output.strip() else []
        super().__init__(message + (f" (last output: {last[0].strip()})" if last else ""))
        self.output = output


class ServiceProcess:
    """`flashsale serve --strategy S --pool-size N` on the database at `database_url`, without access log."""

    def __init__(
        self,
        *,
        strategy: str,
        pool_size: int,
        database_url: str,
        pool_timeout_s: float | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self._logs = tempfile.TemporaryDirectory(prefix="flashsale-serve-")
        self.log_path = Path(self._logs.name) / "serve.log"
        self.server = ServerProcess(
            strategy=strategy,
            pool_size=pool_size,
            pool_timeout=pool_timeout_s,
            access_log=False,
            log_path=self.log_path,
            env={config.DATABASE_URL_ENV: database_url},
            ready_timeout=startup_timeout_s,
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
        try:
            await asyncio.to_thread(self.server.start)
        except ServerNotReady as exc:
            first = str(exc).splitlines()[0].rstrip(":")
            output = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise ServiceFailed(first, output) from None
        self.mark_cpu()
        return self.base_url

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a timeout: this process only, by its pid."""
        await asyncio.to_thread(self.server.stop)
        self._logs.cleanup()

    def mark_cpu(self) -> None:
        """Start measuring the service's CPU use from now."""
        with contextlib.suppress(psutil.Error, TypeError):
            times = psutil.Process(self.pid).cpu_times()
            self._cpu_start, self._wall_start = times.user + times.system, time.perf_counter()

    def cpu_percent(self) -> float | None:
        """CPU used by the service since `mark_cpu()`, in percent of one core (None once it has stopped)."""
        if self._cpu_start is None:
            return None
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.pid).cpu_times()
            wall = time.perf_counter() - self._wall_start
            return 100.0 * (times.user + times.system - self._cpu_start) / wall if wall > 0 else None
        return None
