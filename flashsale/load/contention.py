"""Lock contention made visible: while a run goes, sample `pg_stat_activity` for the sessions waiting on a row
lock (`Lock:tuple`: queued behind another waiter for the same row; `Lock:transactionid`: waiting for the
transaction that holds the row to end) and keep the timeline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pandas as pd
import psycopg

from flashsale.db import connection
from flashsale.repositories.pending import fetch_one

SAMPLE = """
SELECT count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'tuple'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event NOT IN ('tuple', 'transactionid')),
       count(*) FILTER (WHERE state = 'active')
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
COLUMNS = ("t_s", "tuple", "transactionid", "other_lock", "active")
PROBE_COLUMN = "queue_depth"  # the service's order queue (admission control), when the run probes it


class LockSampler:
    """Samples every `interval_s` on its own connection; `t_s` is the time since `origin_ns` (perf_counter_ns).

    A sample that fails because the database went away is skipped (counted in `failures`) and the sampler
    reconnects at the next tick, so the timeline has a gap where the database was down.
    """

    def __init__(
        self,
        url: str,
        *,
        interval_s: float = 0.1,
        origin_ns: int | None = None,
        probe: Callable[[], Awaitable[float | None]] | None = None,
    ) -> None:
        self.url = url
        self.probe = probe  # sampled at each tick beside the database: the service's queue depth
        self.probed: list[float] = []
        self.interval_s = interval_s
        self.origin_ns = origin_ns
        self.rows: list[tuple[float, int, int, int, int]] = []
        self._task: asyncio.Task | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self.error: str | None = None
        self.failures = 0  # samples lost to a database error

    async def start(self) -> None:
        self._conn = await connection.connect_async(self.url)
        if self.origin_ns is None:
            self.origin_ns = time.perf_counter_ns()
        self._task = asyncio.create_task(self._run())

    async def sample(self) -> tuple[float, int, int, int, int]:
        assert self._conn is not None
        assert self.origin_ns is not None
        cur = await self._conn.execute(SAMPLE, prepare=True)
        tuple_, transactionid, other, active = await fetch_one(cur)
        row = ((time.perf_counter_ns() - self.origin_ns) / 1e9, tuple_, transactionid, other, active)
        probed = float("nan")
        if self.probe is not None:
            with contextlib.suppress(Exception):  # an observation: a failed probe leaves a gap
                value = await self.probe()
                probed = float("nan") if value is None else value
        self.rows.append(row)
        self.probed.append(probed)
        return row

    async def _run(self) -> None:
        next_at = time.perf_counter()
        try:
            while True:
                try:
                    if self._conn is None:
                        self._conn = await connection.connect_async(self.url)
                    await self.sample()
                except (psycopg.Error, connection.DatabaseUnavailable):
                    self.failures += 1
                    await self._drop_connection()
                next_at = max(next_at + self.interval_s, time.perf_counter())
                await asyncio.sleep(next_at - time.perf_counter())
        except Exception as exc:  # sampling is an observation: losing it must not stop the run
            self.error = f"{type(exc).__name__}: {exc}"

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def stop(self) -> pd.DataFrame:
        """Stop sampling and close the connection; the timeline of every sample taken."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_connection()
        return self.timeline()

    def timeline(self) -> pd.DataFrame:
        """One row a sample; `queue_depth` only when the run probed the service."""
        frame = pd.DataFrame(self.rows, columns=list(COLUMNS))
        frame = frame.astype({"t_s": "float64", **{c: "int32" for c in COLUMNS[1:]}})
        if self.probe is not None:
            frame[PROBE_COLUMN] = pd.Series(self.probed[: len(frame)], dtype="float64")
        return frame


def mean_row_lock_waiters(timeline: pd.DataFrame, *, start_s: float = 0.0, end_s: float | None = None) -> float | None:
    """Mean of `tuple + transactionid` waiters over the samples taken in [start_s, end_s); None without samples."""
    window = timeline[timeline["t_s"] >= start_s]
    if end_s is not None:
        window = window[window["t_s"] < end_s]
    if window.empty:
        return None
    return float((window["tuple"] + window["transactionid"]).mean())
