"""The processes the lab starts, and how they end.

Children (`ChildProcess`: the service under test, Locust's master and workers) are started here with their log,
checked, and stopped by their pid; a child that failed is one exception, `ChildFailed`, which says which child
(`name`), what it was for (`role`: "service" or "load", so that `flashsale load` can tell its two failures apart)
and the end of what it printed (`output`).

    child = ChildProcess("locust worker 0", [sys.executable, "-m", "locust", ...], log=path, env=env)
    child.check_alive()         # ChildFailed, with the last lines of its log, if it has exited
    child.stop()                # SIGTERM, then SIGKILL after a timeout, by its pid: its exit status

Servers (PostgreSQL's postmaster, Valkey) run as daemons: their parent is whichever process adopted them, so their
exit status is not this process's to collect, and a stopped one may stay a zombie for a while: `stop(pid, ...)`
and `exited(pid)`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import psutil

LOG_LINES = 5  # lines of a failed child's log quoted in its error
STOP_TIMEOUT_S = 10.0  # after SIGTERM, before SIGKILL


def stop(pid: int, sig: int, timeout: float) -> None:
    """Send `sig` to `pid` and wait for it to exit; SIGKILL it if it has not within `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while not exited(pid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
            return
        time.sleep(0.01)


def exited(pid: int) -> bool:
    """Gone, or a zombie: in a container the process that adopted a daemon may take seconds to collect its exit
    status (psutil's wait() would wait for that too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class ChildFailed(RuntimeError):
    """A child process failed, or did not do its part in time; `output` holds the end of its log."""

    def __init__(self, message: str, output: str = "", *, role: str = "load") -> None:
        lines = [line.rstrip() for line in output.strip().splitlines()[-LOG_LINES:]]
        super().__init__(message + (":\n" + "\n".join(lines) if lines else ""))
        self.output, self.role = output, role


class ChildProcess:
    """`args` started now, its stdout and stderr in `log` (or discarded), ended by `stop()` by its pid."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        role: str = "load",
    ) -> None:
        self.name, self.log, self.role = name, log, role
        self._log_file: IO[bytes] | None = open(log, "wb") if log else None  # noqa: SIM115 - closed in stop()
        out = self._log_file or subprocess.DEVNULL
        self.popen = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        """What it has printed so far (empty without a log)."""
        return self.log.read_text(errors="replace") if self.log is not None and self.log.exists() else ""

    def failed(self, message: str) -> ChildFailed:
        return ChildFailed(f"{self.name} (pid {self.pid}) {message}", self.output(), role=self.role)

    def check_alive(self) -> None:
        """`ChildFailed` if it has exited."""
        if (code := self.popen.poll()) is not None:
            raise self.failed(f"exited with status {code}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`; its exit status. Again: the same status."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.popen.returncode
