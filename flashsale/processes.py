"""Stopping a server the project started, by its pid, and telling whether it has gone.

The servers (PostgreSQL's postmaster, Valkey) run as daemons: their parent is whichever process adopted them, so
their exit status is not this process's to collect, and a stopped one may stay a zombie for a while.
"""

from __future__ import annotations

import contextlib
import os
import time

import psutil


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
