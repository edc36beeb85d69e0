"""A run's CPU placement carried out: the embedded database on its CPUs while the run lasts, and a record of the
CPU set each part actually ran on (read back from the processes, not copied from the configuration)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flashsale import placement
from flashsale.db import embedded
from flashsale.load.faults import FaultUnsupported, embedded_pgdata

FOREIGN = "not placed: a server the project did not start"


def embedded_or_none(url: str) -> Path | None:
    """The data directory of the project's embedded server at `url`, or None for any other server."""
    try:
        return embedded_pgdata(url)
    except FaultUnsupported:
        return None


@contextlib.contextmanager
def database_placed(url: str, cpus: str | None, pgdata: Path | None = None) -> Iterator[None]:
    """The embedded server at `url` (its data directory `pgdata`, when the caller knows it) on `cpus` inside the
    block, back where it was after it; a server the project did not start cannot be placed (`FaultUnsupported`, a
    ValueError, says so)."""
    if cpus is None:
        yield
        return
    needed_for = "CPU placements (--db-cpus, or --placement split: use --placement free)"
    with embedded.placed(cpus, pgdata or embedded_pgdata(url, needed_for=needed_for)):
        yield


def actual(pgdata: Path | None, *, service_pid: int | None = None, service_started: bool = False) -> dict[str, Any]:
    """The CPU sets the parts run on now: the database's postmaster, the service's process, and this process (the
    client); for a server the project did not start, why it has none."""
    info = embedded.running(pgdata) if pgdata is not None else None
    ran: dict[str, Any] = {
        "db": placement.affinity_of(info.pid) if info is not None else FOREIGN,
        "client": placement.affinity_of(os.getpid()),
        "usable": placement.format_cpus(placement.usable_cpus()),
        "supported": placement.supported(),
    }
    if service_started:
        ran["service"] = placement.affinity_of(service_pid) if service_pid else None
    return ran
