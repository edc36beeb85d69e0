"""The order service in a child process on a free loopback port, for `--target http` without `--base-url`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
import psutil

from flashsale import config


class ServiceFailed(RuntimeError):
    """The service did not become ready; `output` holds the last lines it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        last = output.strip().splitlines()[-1:] if output.strip() else []
        super().__init__(message + (f" (last output: {last[0].strip()})" if last else ""))
        self.output = output


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`flashsale serve` started by `start()`, ready when `GET /health` answers 200, stopped by its pid."""

    def __init__(
        self,
        *,
        strategy: str,
        pool_size: int,
        database_url: str,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.strategy = strategy
        self.pool_size = pool_size
        self.database_url = database_url
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in stop()
        self._cpu_start: float | None = None
        self._wall_start: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flashsale.cli.main",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--strategy",
            self.strategy,
            "--pool-size",
            str(self.pool_size),
            "--no-access-log",
        ]

    async def start(self) -> str:
        """Start the service on a free port and wait until it is ready; returns its base URL."""
        self.port = free_port(self.host)
        command = self.command()
        env = {**os.environ, config.DATABASE_URL_ENV: self.database_url}
        # Popen, not asyncio's subprocesses: those need a child watcher in whatever thread runs the loop (a
        # notebook's run has its own thread), and one fork/exec before the load starts blocks nothing that matters.
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self.base_url

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServiceFailed(f"the service exited with status {self.process.returncode}", self._tail())
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(f"{self.base_url}/health") as resp:
                        if resp.status == 200:
                            self.mark_cpu()
                            return
                await asyncio.sleep(0.1)
        raise ServiceFailed(f"the service was not ready after {self.startup_timeout_s:g} s", self._tail())

    def mark_cpu(self) -> None:
        """Start measuring the service's CPU use from now."""
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.pid).cpu_times()
            self._cpu_start, self._wall_start = times.user + times.system, time.perf_counter()

    def cpu_percent(self) -> float | None:
        """CPU used by the service since `mark_cpu()`, in percent of one core (None once it has stopped)."""
        if self._cpu_start is None or self.process is None or self.process.poll() is not None:
            return None
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.pid).cpu_times()
            wall = time.perf_counter() - self._wall_start
            return 100.0 * (times.user + times.system - self._cpu_start) / wall if wall > 0 else None
        return None

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout_s`; only this process, by its pid."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)
        self._log.close()

    def _tail(self, lines: int = 15) -> str:
        with contextlib.suppress(ValueError, OSError):
            self._log.seek(0)
            return "\n".join(self._log.read().decode(errors="replace").strip().splitlines()[-lines:])
        return ""
