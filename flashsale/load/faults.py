"""Database faults in the middle of a load run, and what the clients saw of them.

    flashsale load --target http --duration 20s --fault db-restart@10s     # fast shutdown, start again at once
    flashsale load --target http --duration 20s --fault db-stop@10s:3s     # down for 3 s, then start again

A fault stops the project's embedded PostgreSQL by its postmaster pid (fast shutdown: sessions are terminated,
transactions in progress roll back) and starts it again on the same socket, from a worker thread while the workload
goes on. Only the embedded servers under `.flashsale/` can be faulted: the runner will not stop a server it does
not own.

`fault_report` then reads the per-request records around each fault: when the clients started to fail, with which
errors and how fast those answers came, and when the first request succeeded again after the database was back
(the recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flashsale import config
from flashsale.contract import DECIDED
from flashsale.db import connection, embedded
from flashsale.units import parse_seconds

if TYPE_CHECKING:  # numpy and pandas are imported where the records are read, not by every `flashsale` start
    import numpy as np
    import pandas as pd

KINDS = ("db-restart", "db-stop")
_SPEC = re.compile(r"^(?P<kind>[a-z-]+)@(?P<at>[^:]+)(?::(?P<down>.+))?$")


class FaultUnsupported(ValueError):
    """The fault cannot be injected here (for instance: the database is not the project's embedded server)."""


@dataclass(frozen=True)
class Fault:
    """`kind` at `at_s` seconds into the run (warmup included); `db-stop` keeps the server down for `down_s`."""

    kind: str
    at_s: float
    down_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if self.at_s < 0 or self.down_s < 0:
            raise ValueError(f"a fault's time and duration must be 0 or more, got {self}")
        if self.kind == "db-restart" and self.down_s:
            raise ValueError("db-restart starts the server again at once; use db-stop@T:DURATION for a pause")

    @classmethod
    def parse(cls, text: str | Fault) -> Fault:
        """`db-restart@10s`, `db-stop@10s:3s` (durations as everywhere: 500ms, 10s, 1m)."""
        if isinstance(text, Fault):
            return text
        match = _SPEC.match(text.strip())
        if match is None:
            raise ValueError(f"not a fault: {text!r} (write e.g. db-restart@10s or db-stop@10s:3s)")
        down = match["down"]
        if match["kind"] == "db-stop" and down is None:
            raise ValueError(f"say how long the database stays down: {text}:3s")
        return cls(match["kind"], parse_seconds(match["at"]), parse_seconds(down) if down else 0.0)

    def __str__(self) -> str:
        return f"{self.kind}@{self.at_s:g}s" + (f":{self.down_s:g}s" if self.kind == "db-stop" else "")


@dataclass
class FaultEvent:
    """What the injector did, in seconds since the run's origin (the clock of the records' `start_s`)."""

    fault: str
    planned_s: float
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


class FaultInjector:
    """Runs `faults` at their times (from `origin_ns`, a `time.perf_counter_ns()`) against the server on `pgdata`."""

    def __init__(self, faults: list[Fault], pgdata: Path, origin_ns: int) -> None:
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.pgdata = pgdata
        self.origin_ns = origin_ns
        self.events = [FaultEvent(str(f), f.at_s) for f in self.faults]
        self._worker: asyncio.Future | None = None

    def _now(self) -> float:
        return (time.perf_counter_ns() - self.origin_ns) / 1e9

    async def run(self) -> None:
        """Inject every fault in turn. The stop-and-start runs in a thread; once begun it always finishes, even if
        this task is cancelled (see `finish`), so the server is never left down."""
        for fault, event in zip(self.faults, self.events, strict=True):
            await asyncio.sleep(max(0.0, fault.at_s - self._now()))
            self._worker = asyncio.ensure_future(asyncio.to_thread(self._stop_and_start, fault.down_s, event))
            await asyncio.shield(self._worker)

    def _stop_and_start(self, pause_s: float, event: FaultEvent) -> None:
        info = embedded.running(self.pgdata)
        if info is None:
            event.error = f"the embedded PostgreSQL on {self.pgdata} was not running"
            return
        try:
            event.injected_s = self._now()
            embedded.stop(self.pgdata)
            event.down_s = self._now()
            time.sleep(pause_s)
        except Exception as exc:
            event.error = f"{type(exc).__name__}: {exc}"
        finally:
            embedded.resume(self.pgdata, info.socket_dir)
            event.up_s = self._now()

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
    """For each fault: the failures the clients saw from the injection until the first success after the database
    was back (count by outcome and by status, their latency), and the timings:

    - `recovered_s`: when the first request that succeeded (an order taken, or a refusal by the sale's rules: an
      answer that needed the database, `flashsale.contract.DECIDED`) ended after the server was up again;
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
