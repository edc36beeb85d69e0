"""Database and Redis faults in the middle of a load run, and what the clients saw of them.

    flashsale load --target http --duration 20s --fault db-restart@10s     # fast shutdown, start again at once
    flashsale load --target http --duration 20s --fault db-stop@10s:3s     # down for 3 s, then start again
    flashsale load --strategy redis_gate --fault redis-kill@10s:3s         # Valkey SIGKILLed, down 3 s, back empty
    flashsale load --strategy redis_gate --fault redis-restart@10s         # a clean restart, back empty at once

A database fault stops the project's embedded PostgreSQL by its postmaster pid (fast shutdown: sessions are
terminated, transactions in progress roll back) and starts it again on the same socket. A Redis fault stops the
project's embedded Valkey by its pid: `redis-kill` with SIGKILL (a crash: nothing is flushed, clients see their
connections reset), then starts it again after the pause (none without `:DURATION`); `redis-restart` with SIGTERM
(Valkey closes its clients and removes its socket; it saves nothing, being configured without persistence) and
starts it again at once. Either way it comes back on the same socket, empty, as a Redis that lost its memory: the
stock gate is rebuilt from the database by the first order that finds it missing (`flashsale.stock_gate`), and the
clients' pools reconnect by themselves. While it is away `redis_gate` refuses every order with `unavailable` (503),
at once: it never decides without its gate.

Faults run from a worker thread while the workload goes on, and a restarted server is started on the CPUs the
stopped one ran on. Only the embedded servers under `.flashsale/` can be faulted: the runner will not stop a server
it does not own (`embedded_pgdata`, `embedded_valkey_dir`).

`fault_report` then reads the per-request records around each fault: when the clients started to fail, with which
errors and how fast those answers came, and when the first request succeeded again after the server was back
(the recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flashsale import config, placement, processes
from flashsale.contract import DECIDED
from flashsale.db import connection, embedded
from flashsale.kv import connection as kv_connection
from flashsale.kv import embedded as kv_embedded
from flashsale.units import parse_seconds

if TYPE_CHECKING:  # numpy and pandas are imported where the records are read, not by every `flashsale` start
    import numpy as np
    import pandas as pd

DB_KINDS = ("db-restart", "db-stop")
REDIS_KINDS = ("redis-kill", "redis-restart")
KINDS = (*DB_KINDS, *REDIS_KINDS)
_PAUSED = ("db-stop", "redis-kill")  # the kinds that take a pause (`@T:DURATION`): required for db-stop
_KILL_WAIT_S = 30.0  # for a SIGKILLed server to be gone
_SPEC = re.compile(r"^(?P<kind>[a-z-]+)@(?P<at>[^:]+)(?::(?P<down>.+))?$")


class FaultUnsupported(ValueError):
    """The fault cannot be injected here (for instance: the database, or Redis, is not the project's embedded
    server)."""


@dataclass(frozen=True)
class Fault:
    """`kind` at `at_s` seconds into the run (warmup included); `db-stop` and `redis-kill` keep the server down for
    `down_s`."""

    kind: str
    at_s: float
    down_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if self.at_s < 0 or self.down_s < 0:
            raise ValueError(f"a fault's time and duration must be 0 or more, got {self}")
        if self.kind not in _PAUSED and self.down_s:
            paused = "db-stop" if self.kind == "db-restart" else "redis-kill"
            raise ValueError(f"{self.kind} starts the server again at once; use {paused}@T:DURATION for a pause")

    @property
    def server(self) -> str:
        """What the fault stops: `database` or `Redis`."""
        return "database" if self.kind in DB_KINDS else "Redis"

    @classmethod
    def parse(cls, text: str | Fault) -> Fault:
        """`db-restart@10s`, `db-stop@10s:3s`, `redis-kill@10s`, `redis-kill@10s:3s`, `redis-restart@10s`
        (durations as everywhere: 500ms, 10s, 1m)."""
        if isinstance(text, Fault):
            return text
        match = _SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"not a fault: {text!r} (write e.g. db-restart@10s, db-stop@10s:3s or redis-kill@10s:3s)")
        down = match["down"]
        if match["kind"] == "db-stop" and down is None:
            raise ValueError(f"say how long the database stays down: {text}:3s")
        return cls(match["kind"], parse_seconds(match["at"]), parse_seconds(down) if down else 0.0)

    def __str__(self) -> str:
        paused = self.kind == "db-stop" or (self.kind in _PAUSED and self.down_s)
        return f"{self.kind}@{self.at_s:g}s" + (f":{self.down_s:g}s" if paused else "")


@dataclass
class FaultEvent:
    """What the injector did, in seconds since the run's origin (the clock of the records' `start_s`)."""

    fault: str
    planned_s: float
    server: str = "database"  # what it stopped: `database` or `Redis`
    injected_s: float | None = None  # the stop was sent
    down_s: float | None = None  # the server had exited
    up_s: float | None = None  # the server was ready again
    error: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def embedded_pgdata(url: str, *, needed_for: str = "database faults") -> Path:
    """The data directory of the embedded server at `url`, or `FaultUnsupported` if it is any other server (the
    message says what `needed_for` it)."""
    try:
        with connection.connect(url) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
            if row is None:
                raise LookupError("SHOW data_directory returned no row")
            data_directory = Path(row[0]).resolve()
    except Exception as exc:
        raise FaultUnsupported(f"cannot ask {connection.describe(url)} for its data directory: {exc}") from exc
    home = config.state_dir()
    info = embedded.running(data_directory) if data_directory.is_relative_to(home) else None
    if info is None:
        raise FaultUnsupported(
            f"{needed_for} need the project's embedded PostgreSQL (under {home}); "
            f"{connection.describe(url)} is another server (unset {config.DATABASE_URL_ENV} to use the embedded one)"
        )
    return data_directory


async def embedded_valkey_dir(url: str) -> Path:
    """The directory of the embedded Valkey at `url`, or `FaultUnsupported` if it is any other server (asked for its
    working directory, as PostgreSQL is for its data directory: the project's server must run there, on the socket
    that `url` names)."""
    try:
        async with kv_connection.connect(
            url, socket_timeout=kv_connection.CONNECT_TIMEOUT_S, decode_responses=True
        ) as client:
            directory = str((await client.config_get("dir"))["dir"])
    except Exception as exc:
        raise FaultUnsupported(f"cannot ask {kv_connection.describe(url)} for its directory: {exc}") from exc
    return _owned_valkey(url, directory)


def _owned_valkey(url: str, directory: str) -> Path:
    home = config.state_dir()
    path = Path(directory).resolve()
    info = kv_embedded.running(path) if path.is_relative_to(home) else None
    parts = urlsplit(url)
    if info is None or parts.scheme != "unix" or Path(parts.path).resolve() != info.socket:
        raise FaultUnsupported(
            f"Redis faults need the project's embedded Valkey (under {home}); {kv_connection.describe(url)} is "
            f"another server (unset {config.REDIS_URL_ENV} to use the embedded one)"
        )
    return path


@dataclass(frozen=True)
class FaultedServers:
    """Where the faults strike: the embedded PostgreSQL's data directory (for `db-*`), the embedded Valkey's
    directory (for `redis-*`); None where no fault needs it."""

    pgdata: Path | None = None
    valkey_dir: Path | None = None


class FaultInjector:
    """Runs `faults` at their times (from `origin_ns`, a `time.perf_counter_ns()`) against `servers`."""

    def __init__(self, faults: list[Fault], servers: FaultedServers, origin_ns: int) -> None:
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.servers = servers
        self.origin_ns = origin_ns
        self.events = [FaultEvent(str(f), f.at_s, server=f.server) for f in self.faults]
        self._worker: asyncio.Future | None = None

    def _now(self) -> float:
        return (time.perf_counter_ns() - self.origin_ns) / 1e9

    async def run(self) -> None:
        """Inject every fault in turn. The stop-and-start runs in a thread; once begun it always finishes, even if
        this task is cancelled (see `finish`), so the server is never left down."""
        for fault, event in zip(self.faults, self.events, strict=True):
            await asyncio.sleep(max(0.0, fault.at_s - self._now()))
            inject = self._stop_and_start if fault.server == "database" else self._stop_and_start_valkey
            self._worker = asyncio.ensure_future(asyncio.to_thread(inject, fault, event))
            await asyncio.shield(self._worker)

    def _stop_and_start(self, fault: Fault, event: FaultEvent) -> None:
        pgdata = self.servers.pgdata
        assert pgdata is not None, "database faults need the embedded PostgreSQL's data directory"
        info = embedded.running(pgdata)
        if info is None:
            event.error = f"the embedded PostgreSQL on {pgdata} was not running"
            return
        try:
            event.injected_s = self._now()
            embedded.stop(pgdata)
            event.down_s = self._now()
            time.sleep(fault.down_s)
        except Exception as exc:
            event.error = f"{type(exc).__name__}: {exc}"
        finally:
            embedded.resume(pgdata, info.socket_dir)
            event.up_s = self._now()

    def _stop_and_start_valkey(self, fault: Fault, event: FaultEvent) -> None:
        """SIGKILL (`redis-kill`) or SIGTERM (`redis-restart`), wait for the server to be gone, pause, and start it
        again on its directory (so on its socket), on the CPUs it ran on, empty. The start's lock in
        `kv_embedded.start` keeps a client that starts the embedded server on first use from racing it."""
        directory = self.servers.valkey_dir
        assert directory is not None, "Redis faults need the embedded Valkey's directory"
        info = kv_embedded.running(directory)
        if info is None:
            event.error = f"the embedded Valkey on {directory} was not running"
            return
        cpus = placement.affinity_of(info.pid) if placement.supported() else None
        try:
            event.injected_s = self._now()
            if fault.kind == "redis-kill":
                processes.stop(info.pid, signal.SIGKILL, _KILL_WAIT_S)  # sends it, and waits for the pid to be gone
            else:
                kv_embedded.stop(directory)
            event.down_s = self._now()
            time.sleep(fault.down_s)
        except Exception as exc:
            event.error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                with placement.pinned_thread(cpus):
                    kv_embedded.start(directory)
                event.up_s = self._now()
            except Exception as exc:
                event.error = f"not started again: {type(exc).__name__}: {exc}"

    async def finish(self, task: asyncio.Task) -> None:
        """End the injector's `task` after the workload: faults not yet begun are dropped, and a stop-and-start in
        progress is waited for, so that the server is up when this returns."""
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._worker is not None:
            await self._worker


def fault_report(records: pd.DataFrame, events: list[FaultEvent]) -> list[dict]:
    """For each fault: the failures the clients saw from the injection until the first success after the server
    (the database, or Redis) was back (count by outcome and by status, their latency), and the timings:

    - `recovered_s`: when the first request that succeeded (an order taken, or a refusal by the sale's rules: an
      answer that needed the database, or the stock gate rebuilt from it, `flashsale.contract.DECIDED`) ended
      after the server was up again;
    - `recovery_s`: from the injection to `recovered_s` (fault -> first success after it);
    - `lag_s`: from the server being up to `recovered_s` (how long the clients kept failing after it was back);
    - `unavailable_s`: how long the server was down (`up_s - down_s`).
    All times are seconds since the run's origin, like the records' `start_s`.
    """
    import numpy as np

    end_s, failed = _ends_and_failures(records)
    outcome = records["outcome"].astype(str).to_numpy()
    status = records["status"].to_numpy()
    latency = records["latency_ms"].to_numpy(dtype=np.float64)
    reports = []
    for i, event in enumerate(events):
        report = {**event.as_json(), "recovered_s": None, "recovery_s": None, "lag_s": None, "unavailable_s": None}
        if event.injected_s is None or event.up_s is None:
            reports.append(report)
            continue
        limit = next((e.injected_s for e in events[i + 1 :] if e.injected_s is not None), np.inf)
        back = (end_s >= event.up_s) & (end_s < limit) & ~failed
        recovered = float(end_s[back].min()) if back.any() else None
        window = (end_s >= event.injected_s) & (end_s < (recovered if recovered is not None else limit))
        window_failed = window & failed
        names, counts = np.unique(outcome[window_failed], return_counts=True)
        codes, code_counts = np.unique(status[window_failed], return_counts=True)
        failed_latency = latency[window_failed]
        report.update(
            recovered_s=recovered,
            recovery_s=None if recovered is None else recovered - event.injected_s,
            lag_s=None if recovered is None else recovered - event.up_s,
            unavailable_s=None if event.down_s is None else event.up_s - event.down_s,
            requests=int(window.sum()),
            failures=int(window_failed.sum()),
            first_failure_s=float(end_s[window_failed].min()) if window_failed.any() else None,
            last_failure_s=float(end_s[window_failed].max()) if window_failed.any() else None,
            errors={str(n): int(c) for n, c in sorted(zip(names, counts, strict=True), key=lambda x: -x[1])},
            statuses={str(int(c)): int(n) for c, n in zip(codes, code_counts, strict=True) if c},
            failure_latency_ms=_latency(failed_latency),
        )
        reports.append(report)
    return reports


def outage_mask(records: pd.DataFrame, reports: list[dict]) -> np.ndarray:
    """True for the requests that ended between a fault's injection and the recovery after it."""
    import numpy as np

    end_s, _ = _ends_and_failures(records)
    mask = np.zeros(len(records), dtype=bool)
    for report in reports:
        if report.get("injected_s") is None:
            continue
        until = report["recovered_s"] if report["recovered_s"] is not None else np.inf
        mask |= (end_s >= report["injected_s"]) & (end_s < until)
    return mask


def _ends_and_failures(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    end_s = records["start_s"].to_numpy(dtype=np.float64) + records["latency_ms"].to_numpy(dtype=np.float64) / 1e3
    failed = ~records["outcome"].astype(str).isin(DECIDED).to_numpy()
    return end_s, failed


def _latency(values: np.ndarray) -> dict[str, float | None]:
    import numpy as np

    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(values.max())}
